/** A malformed or unsupported message on the wire. Codecs throw this and nothing else for bad input. */
export class WireError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'WireError';
  }
}
