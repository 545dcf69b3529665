// The home blood-pressure monitor dr.li lends patient.zhang (its token given on her record
// page): the device itself posting a reading over the device gateway, and posting it again
// after a dropped link. A device, not a person, so no screen.

/**
 * A reading from the home monitor holding `token`, sent twice with the same client id: the
 * answers of both posts.
 * @param {string} base
 * @param {string} token the device token shown when the monitor was lent
 * @param {{systolic_mmhg: number, diastolic_mmhg: number}} values
 */
export async function homeDeviceReading(base, token, values) {
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
