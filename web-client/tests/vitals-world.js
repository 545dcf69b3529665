// Set-up for tests/vitals.test.js that happens outside the screens under test: a home
// blood-pressure monitor sending a reading, and sending it again after a dropped link.

/**
 * A reading from patient.zhang's home monitor, sent twice with the same client id: the
 * answers of both posts.
 * @param {string} base
 * @param {{call: (method: string, path: string, body?: unknown) => Promise<any>}} _li
 * @param {string} patientId
 * @param {{systolic_mmhg: number, diastolic_mmhg: number}} values
 */
export async function homeDeviceReading(base, _li, patientId, values) {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'patient.zhang', password: 'demo-password' }),
  });
  const { access_token: token } = await login.json();
  const reading = {
    kind: 'blood_pressure', ...values, pulse_bpm: 80, source: 'home', device: 'Yuwell YE660D',
    measured_at: new Date(Date.now() - 60000).toISOString(), client_id: crypto.randomUUID(),
  };
  const twice = [];
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${base}/api/v1/patients/${patientId}/observations`, {
      method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(reading),
    });
    if (!r.ok) throw new Error(`POST observations: ${r.status} ${await r.text()}`);
    twice.push(await r.json());
  }
  return { twice };
}
