// Sign in.
import { h, field, formValues } from '../dom.js';
import { t } from '../i18n.js';
import { api, ApiError } from '../api.js';
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
      if (body.user.must_change_password) {
        // A password set by someone else opens nothing but setting one's own.
        form.replaceWith(passwordChangeView(app, password));
        return;
      }
      app.navigate('/');
    } catch (err) {
      error.textContent = err instanceof ApiError && err.code === 'rate_limited' ? t('signIn.rateLimited') : t('signIn.failed');
    }
  });
  return form;
}

/**
 * Sets one's own password after signing in with a one-time password.
 * @param {{navigate: (path: string) => void}} app
 * @param {string} current the one-time password just used
 * @returns {HTMLElement}
 */
function passwordChangeView(app, current) {
  const error = h('p', { class: 'error', role: 'alert' });
  const form = /** @type {HTMLFormElement} */ (h('form', { class: 'card narrow', 'aria-labelledby': 'pw-title' },
    h('h1', { id: 'pw-title' }, t('password.title')),
    h('p', {}, t('password.oneTime')),
    field(t('password.new'), h('input', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: '10' })),
    field(t('password.repeat'), h('input', { name: 'repeat', type: 'password', autocomplete: 'new-password', required: true, minlength: '10' })),
    error,
    h('button', { type: 'submit', class: 'primary' }, t('password.submit')),
  ));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const { new_password: next, repeat } = formValues(form);
    if (next !== repeat) { error.textContent = t('password.mismatch'); return; }
    try {
      await api('POST', '/api/v1/me/password', { current_password: current, new_password: next });
      const me = await api('GET', '/api/v1/me');
      const s = session.current();
      if (s) session.save({ ...s, user: me });
      app.navigate('/');
    } catch (err) {
      error.textContent = /** @type {Error} */ (err).message;
    }
  });
  return form;
}
