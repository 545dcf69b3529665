// Set-up for tests/vitals.test.js that happens outside the screens under test: the home
// blood-pressure monitor dr.li lends patient.zhang (a home device with its own token), which
// sends a reading, and sends it again after a dropped link.

/**
 * A reading from patient.zhang's home monitor, sent twice with the same client id over the
 * device gateway: the answers of both posts.
 * @param {string} base
 * @param {{call: (method: string, path: string, body?: unknown) => Promise<any>}} li
 * @param {string} patientId
 * @param {{systolic_mmhg: number, diastolic_mmhg: number}} values
 */
export async function homeDeviceReading(base, li, patientId, values) {
  const { token } = await li.call('POST', '/api/v1/devices', { kind: 'home', label: '张秀英家血压计', patient_id: patientId });
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
