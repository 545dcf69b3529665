// Sign in.
import { h, field, formValues } from '../dom.js';
import { t } from '../i18n.js';
import { api } from '../api.js';
import * as session from '../session.js';

/**
 * @param {{navigate: (path: string) => void}} app
 * @returns {HTMLElement}
 */
export function loginView(app) {
  const error = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'card narrow', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, t('signIn.title')),
    field(t('signIn.username'), h('input', { name: 'username', autocomplete: 'username', required: true })),
    field(t('signIn.password'), h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true })),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('signIn.submit')),
    h('p', { class: 'hint' }, t('signIn.demoHint')),
  ));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const { username, password } = formValues(form);
    try {
      const body = await api('POST', '/api/v1/auth/login', { username, password });
      session.save({ access_token: body.access_token, refresh_token: body.refresh_token, user: body.user });
      app.navigate('/');
    } catch (err) {
      error.textContent = t('signIn.failed');
    }
  });
  return form;
}
