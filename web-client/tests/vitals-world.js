// Set-up for tests/vitals.test.js that happens outside the screens: the home blood-pressure
// monitor dr.li lends patient.zhang (a home device with its own token: no screen issues one,
// the admin screen's devices are kiosks and clinic devices), which sends a reading, and sends
// it again after a dropped link.
import { PASSWORD } from './helpers.js';

/**
 * A reading from patient.zhang's home monitor, sent twice with the same client id over the
 * device gateway: the answers of both posts. dr.li issues the monitor's token through the API.
 * @param {string} base
 * @param {string} patientId
 * @param {{systolic_mmhg: number, diastolic_mmhg: number}} values
 */
export async function homeDeviceReading(base, patientId, values) {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: 'dr.li', password: PASSWORD }),
  });
  const { access_token: access } = await login.json();
  const issued = await fetch(`${base}/api/v1/devices`, {
    method: 'POST', headers: { Authorization: `Bearer ${access}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ kind: 'home', label: '张秀英家血压计', patient_id: patientId }),
  });
  if (!issued.ok) throw new Error(`POST /api/v1/devices: ${issued.status} ${await issued.text()}`);
  const { token } = await issued.json();
  const reading = {
    kind: 'blood_pressure', ...values, pulse_bpm: 80, source: 'home', device: 'Yuwell YE660D',
    measured_at: new Date(Date.now() - 60000).toISOString(), client_id: crypto.randomUUID(),
  };
  const twice = [];
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${base}/api/v1/device/observations`, {
      method: 'POST', headers: { Authorization: `Device ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(reading),
    });
    if (!r.ok) throw new Error(`POST /api/v1/device/observations: ${r.status} ${await r.text()}`);
    twice.push(await r.json());
  }
  return { twice };
}
