// Pigeon's AEAD hot path: one OpenSSL cipher context per stream direction, keyed once, re-armed with
// the next 12-byte little-endian counter nonce for every operation (EVP_*Init_ex with only the IV).
// Node's node:crypto has no way to reuse a context, so every chunk there costs a createCipheriv; here a
// chunk costs one IV reset. The batch calls seal or open many Shadowsocks chunks (2-byte length chunk
// + payload chunk, SIP004 and SIP022 alike) in one crossing of the JavaScript/C boundary.
//
// Plain N-API (C, no node-addon-api). OpenSSL comes from the Node binary itself: it exports the
// libcrypto symbols of the OpenSSL it bundles, and node-gyp puts its headers first on the include path
// (see docs/performance.md). Every offset from JavaScript is bounds-checked before memory is touched.
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA_CTX; the SHA1_* functions are looked up with dlsym */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/sha.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define TAG_SIZE 16
#define NONCE_SIZE 12
#define LEN_CHUNK (2 + TAG_SIZE)
/** One AEAD operation's input (OpenSSL counts in int). */
#define MAX_OP ((size_t)1 << 30)

// Result codes of open/openChunks (negative: the stream is dead).
#define ERR_AUTH -1
#define ERR_TOO_LONG -2
#define ERR_ZERO -3

// A stream direction holds only its key and nonce counter (about 100 bytes): an idle connection costs
// no OpenSSL state. Each call borrows the environment's one context for that cipher and direction and
// re-keys it (well under a microsecond, once per batch of chunks), then re-arms it per chunk with the
// nonce. Keeping a context per direction instead cost about 1.5 KiB per idle connection.
typedef struct {
  EVP_CIPHER_CTX *ctx; /* borrowed for the current call (EVP path) */
  int encrypt;
  int id;   /* 0 aes-128-gcm, 1 aes-256-gcm, 2 chacha20-poly1305 */
  int fast; /* chacha20-poly1305 on the fast path below */
  uint8_t key[32];
  uint8_t nonce[NONCE_SIZE];
  uint32_t cc_key[8]; /* fast path: the ChaCha20 key as little-endian words */
  void *poly;         /* fast path: a POLY1305 context of poly_ctx_size() bytes, borrowed per call */
} aead_t;

// ---- ChaCha20-Poly1305 fast path ------------------------------------------------------------------
// OpenSSL 3.0 spends about 0.9 µs re-arming an EVP chacha20-poly1305 context for every operation (its
// provider re-initialises the whole cipher), which with SIP004's 16 KiB chunks costs as much as a
// tenth of the payload's encryption. OpenSSL's own building blocks of that cipher, ChaCha20_ctr32
// (the assembly keystream) and Poly1305_Init/Update/Final, have kept these signatures since 1.1.0
// and are exported by Node's binary; they are looked up at load time (dlsym, never a link-time
// reference), checked against the RFC 8439 §2.8.2 test vector, and used to build the AEAD of RFC 8439
// §2.8 here. If any is missing or the check fails, the EVP path above is used (same bytes, slower).
typedef void (*chacha_fn)(unsigned char *out, const unsigned char *in, size_t len, const unsigned int key[8],
                          const unsigned int counter[4]);
typedef int (*poly_init_fn)(void *ctx, const unsigned char key[32]);
typedef void (*poly_update_fn)(void *ctx, const unsigned char *in, size_t len);
typedef void (*poly_final_fn)(void *ctx, unsigned char mac[16]);
typedef size_t (*poly_size_fn)(void);

static chacha_fn chacha_ctr32;
static poly_init_fn poly_init;
static poly_update_fn poly_update;
static poly_final_fn poly_final;
static size_t poly_ctx_size;
static int fast_chacha; /* set by init() when the lookups and the self-test succeed */

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/** XORs the keystream of (key, nonce) from byte `pos` of block 1 on into in → out (in may equal out). */
static void cc_xor(const aead_t *a, uint8_t *out, const uint8_t *in, size_t len, size_t pos) {
  unsigned int ctr[4] = {(unsigned int)(1 + pos / 64), le32(a->nonce), le32(a->nonce + 4), le32(a->nonce + 8)};
  size_t skip = pos % 64;
  uint8_t block[64];
  if (skip && len) {
    memset(block, 0, sizeof block);
    chacha_ctr32(block, block, 64, a->cc_key, ctr);
    size_t n = 64 - skip < len ? 64 - skip : len;
    for (size_t i = 0; i < n; i++) out[i] = in[i] ^ block[skip + i];
    out += n, in += n, len -= n;
    ctr[0]++;
  }
  size_t whole = len - len % 64;
  if (whole) {
    chacha_ctr32(out, in, whole, a->cc_key, ctr);
    ctr[0] += (unsigned int)(whole / 64);
    out += whole, in += whole, len -= whole;
  }
  if (len) {
    memset(block, 0, sizeof block);
    chacha_ctr32(block, block, 64, a->cc_key, ctr);
    for (size_t i = 0; i < len; i++) out[i] = in[i] ^ block[i];
  }
}

/** Starts the Poly1305 of one operation: its one-time key is block 0 of (key, nonce). */
static void cc_mac_begin(aead_t *a) {
  unsigned int ctr[4] = {0, le32(a->nonce), le32(a->nonce + 4), le32(a->nonce + 8)};
  uint8_t otk[64];
  memset(otk, 0, sizeof otk);
  chacha_ctr32(otk, otk, 64, a->cc_key, ctr);
  poly_init(a->poly, otk);
  memset(otk, 0, sizeof otk);
}

/** Ends it: pads the ciphertext (no AAD in Shadowsocks), appends both lengths, writes the tag. */
static void cc_mac_end(aead_t *a, size_t ct_len, uint8_t tag[TAG_SIZE]) {
  static const uint8_t zeros[16];
  if (ct_len % 16) poly_update(a->poly, zeros, 16 - ct_len % 16);
  uint8_t lens[16];
  put_le64(lens, 0);
  put_le64(lens + 8, (uint64_t)ct_len);
  poly_update(a->poly, lens, 16);
  poly_final(a->poly, tag);
}

static int tags_equal(const uint8_t *x, const uint8_t *y) {
  uint8_t d = 0;
  for (int i = 0; i < TAG_SIZE; i++) d |= x[i] ^ y[i];
  return d == 0;
}

static void bump(uint8_t *n);

/** Short messages (length chunks): blocks 0 and 1 in one call give the MAC key and the keystream. */
static void cc_short_begin(aead_t *a, uint8_t ks[128]) {
  unsigned int ctr[4] = {0, le32(a->nonce), le32(a->nonce + 4), le32(a->nonce + 8)};
  memset(ks, 0, 128);
  chacha_ctr32(ks, ks, 128, a->cc_key, ctr);
  poly_init(a->poly, ks);
}

static int cc_seal1(aead_t *a, const uint8_t *in, size_t len, uint8_t *out) {
  if (len <= 64) {
    uint8_t ks[128];
    cc_short_begin(a, ks);
    for (size_t i = 0; i < len; i++) out[i] = in[i] ^ ks[64 + i];
    memset(ks, 0, sizeof ks);
  } else {
    cc_xor(a, out, in, len, 0);
    cc_mac_begin(a);
  }
  poly_update(a->poly, out, len);
  cc_mac_end(a, len, out + len);
  bump(a->nonce);
  return 1;
}

/** Authenticates before it decrypts: nothing is written when the tag is wrong. */
static int cc_open1(aead_t *a, const uint8_t *in, size_t len, uint8_t *out) {
  size_t plen = len - TAG_SIZE;
  uint8_t tag[TAG_SIZE];
  if (plen <= 64) {
    uint8_t ks[128];
    cc_short_begin(a, ks);
    poly_update(a->poly, in, plen);
    cc_mac_end(a, plen, tag);
    int ok = tags_equal(tag, in + plen);
    if (ok) {
      for (size_t i = 0; i < plen; i++) out[i] = in[i] ^ ks[64 + i];
      bump(a->nonce);
    }
    memset(ks, 0, sizeof ks);
    return ok;
  }
  cc_mac_begin(a);
  poly_update(a->poly, in, plen);
  cc_mac_end(a, plen, tag);
  if (!tags_equal(tag, in + plen)) return 0;
  cc_xor(a, out, in, plen, 0);
  bump(a->nonce);
  return 1;
}

/** RFC 8439 §2.8.2: the AEAD test vector, through the functions found by dlsym. */
static int cc_self_test(void) {
  static const uint8_t key[32] = {0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a,
                                  0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95,
                                  0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f};
  static const uint8_t nonce[12] = {0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47};
  static const char msg[] = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
                            "for the future, sunscreen would be it.";
  // The vector's MAC covers a 12-byte AAD; Shadowsocks has none, so check the keystream by the
  // vector's first ciphertext bytes and the MAC by recomputing it with the AAD here.
  static const uint8_t aad[12] = {0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7};
  static const uint8_t ct_head[16] = {0xd3, 0x1a, 0x8d, 0x34, 0x64, 0x8e, 0x60, 0xdb,
                                      0x7b, 0x86, 0xaf, 0xbc, 0x53, 0xef, 0x7e, 0xc2};
  static const uint8_t ct_tail[2] = {0x61, 0x16};
  static const uint8_t want_tag[16] = {0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a,
                                       0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60, 0x06, 0x91};
  size_t n = sizeof msg - 1; /* 114 */
  aead_t a;
  memset(&a, 0, sizeof a);
  for (int i = 0; i < 8; i++) a.cc_key[i] = le32(key + 4 * i);
  memcpy(a.nonce, nonce, sizeof nonce);
  uint8_t buf[128], tag[16], zeros[16] = {0}, lens[16];
  a.poly = calloc(1, poly_ctx_size);
  if (a.poly == NULL) return 0;
  cc_xor(&a, buf, (const uint8_t *)msg, n, 0);
  cc_mac_begin(&a);
  poly_update(a.poly, aad, sizeof aad);
  poly_update(a.poly, zeros, 16 - sizeof aad % 16);
  poly_update(a.poly, buf, n);
  poly_update(a.poly, zeros, 16 - n % 16);
  put_le64(lens, sizeof aad);
  put_le64(lens + 8, n);
  poly_update(a.poly, lens, 16);
  poly_final(a.poly, tag);
  free(a.poly);
  // The same keystream from an unaligned start (cc_xor's partial-block path).
  uint8_t part[128];
  cc_xor(&a, part, (const uint8_t *)msg + 70, n - 70, 70);
  return memcmp(buf, ct_head, 16) == 0 && memcmp(buf + n - 2, ct_tail, 2) == 0 && memcmp(tag, want_tag, 16) == 0 &&
         memcmp(part, buf + 70, n - 70) == 0;
}

static void find_fast_chacha(void) {
  chacha_ctr32 = (chacha_fn)dlsym(RTLD_DEFAULT, "ChaCha20_ctr32");
  poly_init = (poly_init_fn)dlsym(RTLD_DEFAULT, "Poly1305_Init");
  poly_update = (poly_update_fn)dlsym(RTLD_DEFAULT, "Poly1305_Update");
  poly_final = (poly_final_fn)dlsym(RTLD_DEFAULT, "Poly1305_Final");
  poly_size_fn size = (poly_size_fn)dlsym(RTLD_DEFAULT, "Poly1305_ctx_size");
  if (!chacha_ctr32 || !poly_init || !poly_update || !poly_final || !size) return;
  if (OpenSSL_version_num() < 0x10100000L) return; /* the signatures above are 1.1.0's and later */
  poly_ctx_size = size();
  if (poly_ctx_size == 0 || poly_ctx_size > 4096) return;
  fast_chacha = cc_self_test() && getenv("PIGEON_NATIVE_EVP_ONLY") == NULL;
}

static void bump(uint8_t *n) {
  for (int i = 0; i < NONCE_SIZE; i++) {
    if (++n[i] != 0) break;
  }
}

/** in[0..len) → out[0..len) ‖ tag; bumps the nonce. */
static int seal1(aead_t *a, const uint8_t *in, size_t len, uint8_t *out) {
  if (a->fast) return cc_seal1(a, in, len, out);
  int n = 0;
  if (EVP_EncryptInit_ex(a->ctx, NULL, NULL, NULL, a->nonce) != 1) return 0;
  if (len && (EVP_EncryptUpdate(a->ctx, out, &n, in, (int)len) != 1 || (size_t)n != len)) return 0;
  if (EVP_EncryptFinal_ex(a->ctx, out + len, &n) != 1 || n != 0) return 0;
  if (EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_SIZE, out + len) != 1) return 0;
  bump(a->nonce);
  return 1;
}

/** in[0..len) = ciphertext ‖ tag → out[0..len-16); bumps the nonce only when it authenticates. */
static int open1(aead_t *a, const uint8_t *in, size_t len, uint8_t *out) {
  if (a->fast) return cc_open1(a, in, len, out);
  size_t plen = len - TAG_SIZE;
  int n = 0;
  if (EVP_DecryptInit_ex(a->ctx, NULL, NULL, NULL, a->nonce) != 1) return 0;
  if (plen && (EVP_DecryptUpdate(a->ctx, out, &n, in, (int)plen) != 1 || (size_t)n != plen)) return 0;
  if (EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_SIZE, (void *)(in + plen)) != 1) return 0;
  if (EVP_DecryptFinal_ex(a->ctx, out + plen, &n) != 1) return 0;
  bump(a->nonce);
  return 1;
}

// ---- argument helpers -------------------------------------------------------------------------

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), NULL, "pigeon_aead: N-API call failed");     \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static int bytes_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_ta = false;
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) goto bad;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok) goto bad;
  if (type != napi_uint8_array) goto bad;
  *data = (uint8_t *)p;
  return 1;
bad:
  napi_throw_type_error(env, NULL, "pigeon_aead: expected a Buffer or Uint8Array");
  return 0;
}

static int size_arg(napi_env env, napi_value v, size_t *out) {
  double d = -1;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 2147483647.0 || d != (double)(int64_t)d) {
    napi_throw_range_error(env, NULL, "pigeon_aead: expected a non-negative integer");
    return 0;
  }
  *out = (size_t)d;
  return 1;
}

// ---- the per-environment contexts ----------------------------------------------------------------

typedef struct {
  EVP_CIPHER_CTX *ctx[3][2]; /* [cipher id][encrypt] */
  void *poly;                /* the fast path's POLY1305 state */
} instance_t;


static EVP_CIPHER_CTX *packet_ctx(napi_env env, size_t id, int enc) {
  instance_t *inst = NULL;
  if (napi_get_instance_data(env, (void **)&inst) != napi_ok || inst == NULL) return NULL;
  if (inst->ctx[id][enc] == NULL) {
    const EVP_CIPHER *c = id == 0 ? EVP_aes_128_gcm() : id == 1 ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_CipherInit_ex(ctx, c, NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_SIZE, NULL) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      return NULL;
    }
    inst->ctx[id][enc] = ctx;
  }
  return inst->ctx[id][enc];
}


/** Sets a direction's cipher and key (the key is kept: each call re-keys the shared context). */
static void set_key(aead_t *a, size_t id, const uint8_t *key, size_t klen) {
  a->id = (int)id;
  memcpy(a->key, key, klen);
  if (id == 2 && fast_chacha) {
    a->fast = 1;
    for (int i = 0; i < 8; i++) a->cc_key[i] = le32(key + 4 * i);
  }
}

/** Arms a direction for one call: the shared context re-keyed, or the shared POLY1305 state. */
static int arm(napi_env env, aead_t *x) {
  if (x->fast) {
    instance_t *inst = NULL;
    if (napi_get_instance_data(env, (void **)&inst) != napi_ok || inst == NULL) goto fail;
    if (inst->poly == NULL && (inst->poly = calloc(1, poly_ctx_size)) == NULL) goto fail;
    x->poly = inst->poly;
    return 1;
  }
  x->ctx = packet_ctx(env, (size_t)x->id, x->encrypt);
  if (x->ctx != NULL && EVP_CipherInit_ex(x->ctx, NULL, NULL, x->key, NULL, x->encrypt) == 1) return 1;
fail:
  napi_throw_error(env, NULL, "pigeon_aead: OpenSSL operation failed");
  return 0;
}

static int ctx_arg(napi_env env, napi_value v, aead_t **a, int encrypt) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "pigeon_aead: expected a context");
    return 0;
  }
  *a = (aead_t *)p;
  if ((*a)->encrypt != encrypt) {
    napi_throw_error(env, NULL, encrypt ? "pigeon_aead: not a sealing context" : "pigeon_aead: not an opening context");
    return 0;
  }
  return arm(env, *a);
}

static napi_value number(napi_env env, double d) {
  napi_value v;
  if (napi_create_double(env, d, &v) != napi_ok) return NULL;
  return v;
}

static napi_value range_error(napi_env env, const char *msg) {
  napi_throw_range_error(env, NULL, msg);
  return NULL;
}

static napi_value crypto_error(napi_env env) {
  napi_throw_error(env, NULL, "pigeon_aead: OpenSSL operation failed");
  return NULL;
}

// ---- create(cipherId, key, encrypt, nonce?) → context --------------------------------------------

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_t *a = (aead_t *)data;
  memset(a, 0, sizeof *a); /* ctx and poly are borrowed, not owned */
  free(a);
}

static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return range_error(env, "pigeon_aead: create(cipher, key, encrypt, nonce?)");
  size_t id, klen, nlen = 0;
  uint8_t *key, *nonce = NULL;
  bool enc;
  if (!size_arg(env, argv[0], &id) || !bytes_arg(env, argv[1], &key, &klen)) return NULL;
  CHECK(env, napi_get_value_bool(env, argv[2], &enc));
  if (argc > 3) {
    napi_valuetype t;
    CHECK(env, napi_typeof(env, argv[3], &t));
    if (t != napi_undefined) {
      if (!bytes_arg(env, argv[3], &nonce, &nlen)) return NULL;
      if (nlen != NONCE_SIZE) return range_error(env, "pigeon_aead: the nonce has 12 bytes");
    }
  }
  const EVP_CIPHER *c = id == 0 ? EVP_aes_128_gcm() : id == 1 ? EVP_aes_256_gcm() : id == 2 ? EVP_chacha20_poly1305() : NULL;
  if (c == NULL) return range_error(env, "pigeon_aead: unknown cipher");
  if ((size_t)EVP_CIPHER_key_length(c) != klen) return range_error(env, "pigeon_aead: wrong key length");

  aead_t *a = (aead_t *)calloc(1, sizeof *a);
  if (a == NULL) return crypto_error(env);
  a->encrypt = enc;
  if (nonce) memcpy(a->nonce, nonce, NONCE_SIZE);
  set_key(a, id, key, klen);
  napi_value ext;
  if (napi_create_external(env, a, finalize, NULL, &ext) != napi_ok) {
    memset(a, 0, sizeof *a);
    free(a);
    return crypto_error(env);
  }
  return ext;
}

// ---- seal(ctx, plain, out, offset) → offset after the tag ----------------------------------------

static napi_value seal(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return range_error(env, "pigeon_aead: seal(ctx, plain, out, offset)");
  aead_t *a;
  uint8_t *in, *out;
  size_t ilen, olen, off;
  if (!ctx_arg(env, argv[0], &a, 1) || !bytes_arg(env, argv[1], &in, &ilen) || !bytes_arg(env, argv[2], &out, &olen) ||
      !size_arg(env, argv[3], &off))
    return NULL;
  if (ilen > MAX_OP) return range_error(env, "pigeon_aead: input too large");
  if (off > olen || olen - off < ilen + TAG_SIZE) return range_error(env, "pigeon_aead: output too small");
  if (!seal1(a, in, ilen, out + off)) return crypto_error(env);
  return number(env, (double)(off + ilen + TAG_SIZE));
}

// ---- open(ctx, sealed, out, offset) → plaintext length, or -1 when it does not authenticate --------

static napi_value open_(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return range_error(env, "pigeon_aead: open(ctx, sealed, out, offset)");
  aead_t *a;
  uint8_t *in, *out;
  size_t ilen, olen, off;
  if (!ctx_arg(env, argv[0], &a, 0) || !bytes_arg(env, argv[1], &in, &ilen) || !bytes_arg(env, argv[2], &out, &olen) ||
      !size_arg(env, argv[3], &off))
    return NULL;
  if (ilen < TAG_SIZE) return number(env, ERR_AUTH);
  if (ilen > MAX_OP) return range_error(env, "pigeon_aead: input too large");
  if (off > olen || olen - off < ilen - TAG_SIZE) return range_error(env, "pigeon_aead: output too small");
  return number(env, open1(a, in, ilen, out + off) ? (double)(ilen - TAG_SIZE) : ERR_AUTH);
}

// ---- sealChunks(ctx, data, from, to, maxPayload, out, offset) → offset after the last chunk -------

static napi_value seal_chunks(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) return range_error(env, "pigeon_aead: sealChunks(ctx, data, from, to, max, out, offset)");
  aead_t *a;
  uint8_t *in, *out;
  size_t ilen, from, to, max, olen, o;
  if (!ctx_arg(env, argv[0], &a, 1) || !bytes_arg(env, argv[1], &in, &ilen) || !size_arg(env, argv[2], &from) ||
      !size_arg(env, argv[3], &to) || !size_arg(env, argv[4], &max) || !bytes_arg(env, argv[5], &out, &olen) ||
      !size_arg(env, argv[6], &o))
    return NULL;
  if (from > to || to > ilen) return range_error(env, "pigeon_aead: bad input range");
  if (max == 0 || max > 0xffff) return range_error(env, "pigeon_aead: bad chunk size");
  if (o > olen) return range_error(env, "pigeon_aead: output too small");
  for (size_t p = from; p < to;) {
    size_t n = to - p < max ? to - p : max;
    if (olen - o < LEN_CHUNK + n + TAG_SIZE) return range_error(env, "pigeon_aead: output too small");
    uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    if (!seal1(a, len, 2, out + o)) return crypto_error(env);
    o += LEN_CHUNK;
    if (!seal1(a, in + p, n, out + o)) return crypto_error(env);
    o += n + TAG_SIZE;
    p += n;
  }
  return number(env, (double)o);
}

// ---- openChunks(ctx, wire, from, to, maxPayload, pending, out, offset, state) → code --------------
// Opens every whole chunk in wire[from..to). `pending` is the payload length announced by a length
// chunk already opened (0: a length chunk comes next). state (Int32Array(3)) receives the input offset
// reached, the output offset reached and the new pending length. code: 0, or ERR_* (stream dead).
// `out` may be `wire` itself (offset <= from): each payload is then opened in place (OpenSSL allows
// in == out, not partial overlap) and moved down behind the previous one, so the plaintext ends up
// contiguous at the front without a second buffer.

static napi_value open_chunks(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) return range_error(env, "pigeon_aead: openChunks(ctx, wire, from, to, max, pending, out, offset, state)");
  aead_t *a;
  uint8_t *in, *out;
  size_t ilen, from, to, max, pending, olen, o, slen;
  if (!ctx_arg(env, argv[0], &a, 0) || !bytes_arg(env, argv[1], &in, &ilen) || !size_arg(env, argv[2], &from) ||
      !size_arg(env, argv[3], &to) || !size_arg(env, argv[4], &max) || !size_arg(env, argv[5], &pending) ||
      !bytes_arg(env, argv[6], &out, &olen) || !size_arg(env, argv[7], &o))
    return NULL;
  bool is_ta = false;
  napi_typedarray_type type;
  void *sp = NULL;
  if (napi_is_typedarray(env, argv[8], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[8], &type, &slen, &sp, NULL, NULL) != napi_ok || type != napi_int32_array ||
      slen < 3) {
    napi_throw_type_error(env, NULL, "pigeon_aead: state must be an Int32Array(3)");
    return NULL;
  }
  int32_t *state = (int32_t *)sp;
  if (from > to || to > ilen) return range_error(env, "pigeon_aead: bad input range");
  if (max == 0 || max > 0xffff || pending > max) return range_error(env, "pigeon_aead: bad chunk size");
  if (o > olen) return range_error(env, "pigeon_aead: output too small");
  size_t p = from;
  int code = 0;
  for (;;) {
    if (pending == 0) {
      if (to - p < LEN_CHUNK) break;
      uint8_t len[2];
      if (!open1(a, in + p, LEN_CHUNK, len)) {
        code = ERR_AUTH;
        break;
      }
      p += LEN_CHUNK;
      pending = ((size_t)len[0] << 8) | len[1];
      if (pending > max) {
        code = ERR_TOO_LONG;
        break;
      }
      if (pending == 0) {
        code = ERR_ZERO;
        break;
      }
    }
    if (to - p < pending + TAG_SIZE) break;
    if (olen - o < pending) return range_error(env, "pigeon_aead: output too small");
    uint8_t *dst = out + o;
    uintptr_t d = (uintptr_t)dst, src = (uintptr_t)(in + p);
    int overlaps = d < src + pending + TAG_SIZE && src < d + pending;
    if (!open1(a, in + p, pending + TAG_SIZE, overlaps ? in + p : dst)) {
      code = ERR_AUTH;
      break;
    }
    if (overlaps && dst != in + p) memmove(dst, in + p, pending);
    p += pending + TAG_SIZE;
    o += pending;
    pending = 0;
  }
  state[0] = (int32_t)p;
  state[1] = (int32_t)o;
  state[2] = (int32_t)pending;
  return number(env, code);
}

// ---- openPair(ctx, a, b, bLength) → plaintext length, or -1 ---------------------------------------
// Opens one sealed chunk that arrived in two pieces, a ‖ b[0..bLength), in place: the plaintext is
// left in a and then b (as much as each held of the ciphertext). No copy of the chunk is made.

static napi_value open_pair(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return range_error(env, "pigeon_aead: openPair(ctx, a, b, bLength)");
  aead_t *ctx;
  uint8_t *a, *b;
  size_t alen, blen, bcap;
  if (!ctx_arg(env, argv[0], &ctx, 0) || !bytes_arg(env, argv[1], &a, &alen) || !bytes_arg(env, argv[2], &b, &bcap) ||
      !size_arg(env, argv[3], &blen))
    return NULL;
  if (blen > bcap || alen > MAX_OP || blen > MAX_OP) return range_error(env, "pigeon_aead: bad input range");
  size_t total = alen + blen;
  if (total < TAG_SIZE) return number(env, ERR_AUTH);
  size_t plen = total - TAG_SIZE;
  uint8_t tag[TAG_SIZE];
  for (size_t i = 0; i < TAG_SIZE; i++) {
    size_t k = plen + i;
    tag[i] = k < alen ? a[k] : b[k - alen];
  }
  size_t in_a = plen < alen ? plen : alen;
  size_t in_b = plen - in_a;
  if (ctx->fast) {
    uint8_t want[TAG_SIZE];
    cc_mac_begin(ctx);
    poly_update(ctx->poly, a, in_a);
    poly_update(ctx->poly, b, in_b);
    cc_mac_end(ctx, plen, want);
    if (!tags_equal(want, tag)) return number(env, ERR_AUTH);
    cc_xor(ctx, a, a, in_a, 0);
    cc_xor(ctx, b, b, in_b, in_a);
    bump(ctx->nonce);
    return number(env, (double)plen);
  }
  int n = 0;
  if (EVP_DecryptInit_ex(ctx->ctx, NULL, NULL, NULL, ctx->nonce) != 1) return crypto_error(env);
  if (in_a && (EVP_DecryptUpdate(ctx->ctx, a, &n, a, (int)in_a) != 1 || (size_t)n != in_a)) return crypto_error(env);
  if (in_b && (EVP_DecryptUpdate(ctx->ctx, b, &n, b, (int)in_b) != 1 || (size_t)n != in_b)) return crypto_error(env);
  if (EVP_CIPHER_CTX_ctrl(ctx->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_SIZE, tag) != 1) return crypto_error(env);
  uint8_t fin[TAG_SIZE];
  if (EVP_DecryptFinal_ex(ctx->ctx, fin, &n) != 1) return number(env, ERR_AUTH);
  bump(ctx->nonce);
  return number(env, (double)plen);
}


// ---- per-packet operations (UDP) and the SIP004 subkey ---------------------------------------------
// Shadowsocks UDP seals every packet under a fresh key (SIP004: a subkey per salt) or a fresh nonce,
// so there is no stream context to keep; what is kept instead is one EVP context per cipher and
// direction, re-keyed per packet, in the addon's per-environment instance data (so worker threads
// never share one). The SIP004 subkey is HKDF-SHA1 (RFC 5869) over OpenSSL's SHA1_* functions, also
// found with dlsym and checked against RFC 5869's test case 4 at load.

typedef int (*sha1_init_fn)(SHA_CTX *c);
typedef int (*sha1_update_fn)(SHA_CTX *c, const void *data, size_t len);
typedef int (*sha1_final_fn)(unsigned char *md, SHA_CTX *c);
static sha1_init_fn sha1_init;
static sha1_update_fn sha1_update;
static sha1_final_fn sha1_final;
static int have_hkdf;

static void hmac_sha1(const uint8_t *key, size_t klen, const uint8_t *m1, size_t l1, const uint8_t *m2, size_t l2,
                      const uint8_t *m3, size_t l3, uint8_t out[20]) {
  uint8_t k[64], pad[64], inner[20];
  SHA_CTX c;
  memset(k, 0, sizeof k);
  if (klen > 64) {
    sha1_init(&c);
    sha1_update(&c, key, klen);
    sha1_final(k, &c);
  } else {
    memcpy(k, key, klen);
  }
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  sha1_init(&c);
  sha1_update(&c, pad, 64);
  if (l1) sha1_update(&c, m1, l1);
  if (l2) sha1_update(&c, m2, l2);
  if (l3) sha1_update(&c, m3, l3);
  sha1_final(inner, &c);
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  sha1_init(&c);
  sha1_update(&c, pad, 64);
  sha1_update(&c, inner, 20);
  sha1_final(out, &c);
  memset(k, 0, sizeof k);
  memset(pad, 0, sizeof pad);
  memset(&c, 0, sizeof c);
}

/** HKDF-SHA1(ikm, salt, info) → out[0..len), len <= 255 * 20. */
static void hkdf_sha1(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len, const uint8_t *info,
                      size_t info_len, uint8_t *out, size_t len) {
  uint8_t prk[20], t[20];
  hmac_sha1(salt, salt_len, ikm, ikm_len, NULL, 0, NULL, 0, prk);
  size_t have = 0;
  for (uint8_t i = 1; have < len; i++) {
    hmac_sha1(prk, 20, i == 1 ? NULL : t, i == 1 ? 0 : 20, info, info_len, &i, 1, t);
    size_t n = len - have < 20 ? len - have : 20;
    memcpy(out + have, t, n);
    have += n;
  }
  memset(prk, 0, sizeof prk);
  memset(t, 0, sizeof t);
}

static int hex_eq(const uint8_t *got, const char *hex, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1 || got[i] != v) return 0;
  }
  return 1;
}

static void find_hkdf(void) {
  sha1_init = (sha1_init_fn)dlsym(RTLD_DEFAULT, "SHA1_Init");
  sha1_update = (sha1_update_fn)dlsym(RTLD_DEFAULT, "SHA1_Update");
  sha1_final = (sha1_final_fn)dlsym(RTLD_DEFAULT, "SHA1_Final");
  if (!sha1_init || !sha1_update || !sha1_final) return;
  // RFC 5869 A.4 (SHA-1, 11-byte IKM, 13-byte salt, 10-byte info, L = 42).
  uint8_t ikm[11], salt[13], info[10], okm[42];
  memset(ikm, 0x0b, sizeof ikm);
  for (int i = 0; i < 13; i++) salt[i] = (uint8_t)i;
  for (int i = 0; i < 10; i++) info[i] = (uint8_t)(0xf0 + i);
  hkdf_sha1(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, okm, sizeof okm);
  have_hkdf = hex_eq(okm,
                     "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896",
                     42);
}

static const uint8_t SS_SUBKEY_INFO[9] = {'s', 's', '-', 's', 'u', 'b', 'k', 'e', 'y'};

// subkey(masterKey, salt, out): SIP004's HKDF-SHA1(masterKey, salt, "ss-subkey") into out (its whole length).
static napi_value subkey(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return range_error(env, "pigeon_aead: subkey(key, salt, out)");
  uint8_t *key, *salt, *out;
  size_t klen, slen, olen;
  if (!bytes_arg(env, argv[0], &key, &klen) || !bytes_arg(env, argv[1], &salt, &slen) ||
      !bytes_arg(env, argv[2], &out, &olen))
    return NULL;
  if (!have_hkdf) return crypto_error(env);
  if (olen == 0 || olen > 255 * 20 || klen > MAX_OP || slen > MAX_OP) return range_error(env, "pigeon_aead: bad subkey size");
  hkdf_sha1(key, klen, salt, slen, SS_SUBKEY_INFO, sizeof SS_SUBKEY_INFO, out, olen);
  return number(env, (double)olen);
}

/** Arguments shared by packetSeal/packetOpen: (cipherId, key, nonce, in, out, offset). */
static int packet_args(napi_env env, napi_callback_info info, int enc, aead_t *a, uint8_t **in, size_t *ilen,
                       uint8_t **out, size_t *olen, size_t *off) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) {
    napi_throw_range_error(env, NULL, "pigeon_aead: packetSeal/packetOpen(cipher, key, nonce, in, out, offset)");
    return 0;
  }
  size_t id, klen, nlen;
  uint8_t *key, *nonce;
  if (!size_arg(env, argv[0], &id) || !bytes_arg(env, argv[1], &key, &klen) || !bytes_arg(env, argv[2], &nonce, &nlen) ||
      !bytes_arg(env, argv[3], in, ilen) || !bytes_arg(env, argv[4], out, olen) || !size_arg(env, argv[5], off))
    return 0;
  if (id > 2) {
    napi_throw_range_error(env, NULL, "pigeon_aead: unknown cipher");
    return 0;
  }
  if (klen != (id == 0 ? 16u : 32u) || nlen != NONCE_SIZE) {
    napi_throw_range_error(env, NULL, "pigeon_aead: wrong key or nonce length");
    return 0;
  }
  if (*ilen > MAX_OP) {
    napi_throw_range_error(env, NULL, "pigeon_aead: input too large");
    return 0;
  }
  memset(a, 0, sizeof *a);
  a->encrypt = enc;
  memcpy(a->nonce, nonce, NONCE_SIZE);
  set_key(a, id, key, klen);
  return arm(env, a);
}


// packetSeal(cipher, key, nonce, plain, out, offset) → offset after the tag
static napi_value packet_seal(napi_env env, napi_callback_info info) {
  aead_t a;
  uint8_t *in, *out;
  size_t ilen, olen, off;
  if (!packet_args(env, info, 1, &a, &in, &ilen, &out, &olen, &off)) return NULL;
  if (off > olen || olen - off < ilen + TAG_SIZE) return range_error(env, "pigeon_aead: output too small");
  int ok = seal1(&a, in, ilen, out + off);
  memset(&a, 0, sizeof a);
  if (!ok) return crypto_error(env);
  return number(env, (double)(off + ilen + TAG_SIZE));
}

// packetOpen(cipher, key, nonce, sealed, out, offset) → plaintext length, or -1 when it does not authenticate
static napi_value packet_open(napi_env env, napi_callback_info info) {
  aead_t a;
  uint8_t *in, *out;
  size_t ilen, olen, off;
  if (!packet_args(env, info, 0, &a, &in, &ilen, &out, &olen, &off)) return NULL;
  if (ilen < TAG_SIZE) return number(env, ERR_AUTH);
  if (off > olen || olen - off < ilen - TAG_SIZE) return range_error(env, "pigeon_aead: output too small");
  int ok = open1(&a, in, ilen, out + off);
  memset(&a, 0, sizeof a);
  return number(env, ok ? (double)(ilen - TAG_SIZE) : ERR_AUTH);
}

static void free_instance(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance_t *inst = (instance_t *)data;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) EVP_CIPHER_CTX_free(inst->ctx[i][j]);
  free(inst->poly);
  free(inst);
}

// ---- module -------------------------------------------------------------------------------------

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"seal", NULL, seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, open_, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sealChunks", NULL, seal_chunks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openChunks", NULL, open_chunks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openPair", NULL, open_pair, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetSeal", NULL, packet_seal, NULL, NULL, NULL, napi_enumerable, NULL},
      {"packetOpen", NULL, packet_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"subkey", NULL, subkey, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  find_fast_chacha();
  find_hkdf();
  instance_t *inst = (instance_t *)calloc(1, sizeof *inst);
  if (inst == NULL || napi_set_instance_data(env, inst, free_instance, NULL) != napi_ok) {
    free(inst);
    return NULL;
  }
  napi_value v;
  if (napi_get_boolean(env, have_hkdf != 0, &v) == napi_ok) napi_set_named_property(env, exports, "hasSubkey", v);
  if (napi_get_boolean(env, fast_chacha != 0, &v) == napi_ok) napi_set_named_property(env, exports, "fastChaCha", v);
  if (napi_create_string_utf8(env, OPENSSL_VERSION_TEXT, NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, exports, "opensslHeaders", v);
  if (napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &v) == napi_ok)
    napi_set_named_property(env, exports, "opensslRuntime", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
