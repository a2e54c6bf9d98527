// The Shadowsocks methods Pigeon speaks, as data: SIP004 AEAD and SIP022 "2022" editions.

export const AEAD_METHODS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as const;
export const SS2022_METHODS = [
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-256-gcm',
  '2022-blake3-chacha20-poly1305',
] as const;
export const METHODS = [...AEAD_METHODS, ...SS2022_METHODS] as const;

export type AeadMethodName = (typeof AEAD_METHODS)[number];
export type Ss2022MethodName = (typeof SS2022_METHODS)[number];
export type MethodName = (typeof METHODS)[number];

/** The node:crypto AEAD cipher behind a method. */
export type CipherName = 'aes-128-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

export interface MethodSpec {
  readonly name: MethodName;
  /** 'aead' = SIP004 (password → EVP_BytesToKey, HKDF-SHA1); '2022' = SIP022 (base64 PSK, BLAKE3). */
  readonly edition: 'aead' | '2022';
  readonly cipher: CipherName;
  readonly keySize: 16 | 32;
  /** Salt size equals key size in both editions. */
  readonly saltSize: 16 | 32;
  readonly tagSize: 16;
  /** Largest plaintext in one payload chunk. */
  readonly maxPayload: number;
}

const spec = (
  name: MethodName,
  edition: 'aead' | '2022',
  cipher: CipherName,
  keySize: 16 | 32,
): MethodSpec => ({
  name,
  edition,
  cipher,
  keySize,
  saltSize: keySize,
  tagSize: 16,
  maxPayload: edition === 'aead' ? 0x3fff : 0xffff,
});

const SPECS: Record<MethodName, MethodSpec> = {
  'aes-128-gcm': spec('aes-128-gcm', 'aead', 'aes-128-gcm', 16),
  'aes-256-gcm': spec('aes-256-gcm', 'aead', 'aes-256-gcm', 32),
  'chacha20-ietf-poly1305': spec('chacha20-ietf-poly1305', 'aead', 'chacha20-poly1305', 32),
  '2022-blake3-aes-128-gcm': spec('2022-blake3-aes-128-gcm', '2022', 'aes-128-gcm', 16),
  '2022-blake3-aes-256-gcm': spec('2022-blake3-aes-256-gcm', '2022', 'aes-256-gcm', 32),
  '2022-blake3-chacha20-poly1305': spec('2022-blake3-chacha20-poly1305', '2022', 'chacha20-poly1305', 32),
};

/** Accepts the names other tools use too (v2ray's "chacha20-poly1305", upper case). */
export function normalizeMethodName(name: string): MethodName | undefined {
  const n = name.trim().toLowerCase();
  if (n === 'chacha20-poly1305') return 'chacha20-ietf-poly1305';
  return (METHODS as readonly string[]).includes(n) ? (n as MethodName) : undefined;
}

export function isMethodName(name: string): name is MethodName {
  return (METHODS as readonly string[]).includes(name);
}

export function methodSpec(name: MethodName): MethodSpec {
  return SPECS[name];
}
