// One peer connection with "perfect negotiation": both sides may offer at any time; on a
// collision the impolite side ignores the incoming offer and the polite side rolls back.
// Which side is polite comes from the server (`polite` in joined / peer-joined).

export class Peer {
  /**
   * @param {{id: string, polite: boolean, iceServers: RTCIceServer[], stream: MediaStream,
   *   send: (msg: Record<string, unknown>) => void, onTrack: (stream: MediaStream) => void,
   *   onState?: (state: string) => void}} opts
   */
  constructor(opts) {
    this.id = opts.id;
    this.polite = opts.polite;
    this.send = opts.send;
    this.makingOffer = false;
    this.ignoreOffer = false;
    /** @type {Promise<void>} */
    this.queue = Promise.resolve();
    this.pc = new RTCPeerConnection({ iceServers: opts.iceServers });
    /** @type {RTCRtpSender | null} */
    this.videoSender = null;
    for (const track of opts.stream.getTracks()) {
      const sender = this.pc.addTrack(track, opts.stream);
      if (track.kind === 'video') this.videoSender = sender;
    }
    this.pc.ontrack = (e) => opts.onTrack(e.streams[0] || new MediaStream([e.track]));
    this.pc.onicecandidate = (e) => this.send({ type: 'signal', to: this.id, candidate: e.candidate ? e.candidate.toJSON() : { candidate: '' } });
    this.pc.onconnectionstatechange = () => opts.onState?.(this.pc.connectionState);
    // The polite side (the later arrival) lets the side already in the room make the first
    // offer, so the opening exchange has no glare; it offers itself if none comes.
    this.waitForOffer = this.polite;
    this.pendingOffer = false;
    this.pc.onnegotiationneeded = () => {
      if (this.waitForOffer) this.pendingOffer = true;
      else this.negotiate();
    };
    this.offerTimer = setTimeout(() => {
      this.waitForOffer = false;
      if (this.pendingOffer) this.negotiate();
    }, 3000);
  }

  async negotiate() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.send({ type: 'signal', to: this.id, description: this.pc.localDescription?.toJSON() });
    } finally {
      this.makingOffer = false;
    }
  }

  /**
   * Handles one relayed signal. Signals are applied one at a time, in arrival order: a
   * candidate must not overtake the description it belongs to.
   * @param {{description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit}} msg
   * @returns {Promise<void>}
   */
  onSignal(msg) {
    const next = this.queue.then(() => this.apply(msg));
    this.queue = next.catch(() => {});
    return next;
  }

  /** @param {{description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit}} msg */
  async apply(msg) {
    const { description, candidate } = msg;
    if (description) {
      this.waitForOffer = false;
      this.pendingOffer = false;
      clearTimeout(this.offerTimer);
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        await this.pc.setLocalDescription();
        this.send({ type: 'signal', to: this.id, description: this.pc.localDescription?.toJSON() });
      }
    } else if (candidate) {
      if (!candidate.candidate) return; // end of candidates
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }

  /**
   * Replaces the outgoing video track (camera or screen share).
   * @param {MediaStreamTrack | null} track
   */
  async replaceVideo(track) {
    if (this.videoSender) await this.videoSender.replaceTrack(track);
  }

  /**
   * Takes `iceServers` (fresh TURN credentials) for the next ICE gathering, so a later ICE
   * restart uses them. A configuration the browser refuses leaves the old servers.
   * @param {RTCIceServer[]} iceServers
   */
  useIceServers(iceServers) {
    if (this.pc.connectionState === 'closed') return;
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch {
      // The old servers stay.
    }
  }

  /**
   * Restarts ICE, first taking `iceServers` (fresh TURN credentials after a resume) when given.
   * @param {RTCIceServer[]} [iceServers]
   */
  restartIce(iceServers) {
    if (iceServers) this.useIceServers(iceServers);
    this.pc.restartIce();
  }

  close() {
    clearTimeout(this.offerTimer);
    this.pc.close();
  }
}
