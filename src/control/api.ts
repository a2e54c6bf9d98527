// The management REST API (fastify + TypeBox: one schema validates, serializes and documents each
// route). Outline's shape where it fits, extended with pause/resume, expiry, usage and subscriptions.
//
// Guarded by a secret, in either of two forms: as the first path segment (Outline's form,
// https://host:port/SECRET/access-keys), which is stripped before routing, or as a bearer token on the
// bare path. Subscription documents live outside the secret, on each key's own unguessable token.
// Nothing here logs URLs: they carry the secret and the tokens.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchemaValidationError,
} from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static, type TSchema } from 'typebox';
import { METHODS, methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import type { AccessKey, DataLimit, KeyStore, KeyUsage, LimitWindow, ServerSettings } from './types.js';
import type { PrometheusMetrics } from './metrics.js';
import {
  SUBSCRIPTION_FILES,
  accessUri,
  clashYaml,
  clientPassword,
  keyTraffic,
  outlineJson,
  sip008Json,
  singBoxJson,
  ssconfUrl,
  subscriptionUrl,
  usesIdentityPsk,
} from './share.js';
import { newDisguisePrefix, prefixForNewKey } from './keys.js';
import { normalizeHostname } from './text-input.js';
import { adminPage, type AdminOptions } from './admin/index.js';

export interface ManagementApiOptions {
  store: KeyStore;
  metrics: PrometheusMetrics;
  /** At least 16 characters from A-Z a-z 0-9 - _ . ~ (it is a path segment). */
  secret: string;
  /** Serve HTTPS with this key and certificate (PEM); plain HTTP without. */
  tls?: { key: string; cert: string };
  /** Reported by GET /server. */
  version: string;
  /** Where apps reach this API, e.g. https://203.0.113.7:35021: the base of subscription URLs. */
  publicUrl: string;
  /** Called after every change to settings or keys made through the API. */
  onSettingsChange?: () => void;
  /** @deprecated the earlier name of onSettingsChange; both are called. */
  onChange?: () => void;
  /** Where errors go (a pino logger); nothing is logged without one. Request lines never are. */
  log?: FastifyBaseLogger | false;
  /** What the admin page (/admin, src/control/admin/) shows beyond the store: uptime, listeners, connections. */
  admin?: AdminOptions;
}

/** The earlier name of ManagementApiOptions. */
export type ApiOptions = ManagementApiOptions;

export const API_BODY_LIMIT = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Schemas: the single source for validation, serialization and docs/openapi.json.

const Method = Type.Unsafe<MethodName>({
  type: 'string',
  enum: [...METHODS],
  description: 'Shadowsocks method (SIP004 AEAD or SIP022 2022 edition)',
});
const Window = Type.Unsafe<LimitWindow>({
  type: 'string',
  enum: ['rolling-30d', 'total'],
  description: 'What the limit counts: the last 30 days (the default) or all time',
});
const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const LimitIn = Type.Object(
  { bytes: Bytes, window: Type.Optional(Window) },
  { additionalProperties: false, description: 'A data limit: bytes in + out' },
);
const LimitBody = Type.Object({ limit: LimitIn }, { additionalProperties: false });
const LimitOut = Type.Object({ bytes: Type.Integer() });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const KeyName = Type.String({ maxLength: 100 });
const Millis = Type.Integer({
  minimum: 0,
  maximum: 8_640_000_000_000_000,
  description: 'ms since the epoch',
});
const NullableMillis = Type.Union([Type.Integer(), Type.Null()]);
const Usage = Type.Object(
  {
    total: Type.Integer({ description: 'Bytes relayed since the key was created' }),
    last30d: Type.Integer({ description: 'Bytes relayed in the last 30 days' }),
  },
  { description: 'Bytes relayed (in + out)' },
);
const Id = Type.Object({ id: Type.String({ description: 'Access key id' }) });
const Token = Type.Object({ token: Type.String({ description: "The key's subscription token" }) });

const SubscriptionUrls = Type.Object({
  sip008: Type.String({ description: 'SIP008 online config (https)' }),
  ssconf: Type.String({ description: "Outline's dynamic access key (ssconf://)" }),
  outline: Type.String({ description: 'The JSON behind the ssconf:// key (https)' }),
  clash: Type.String({ description: 'Clash / mihomo profile (https)' }),
  singBox: Type.String({ description: 'sing-box outbounds (https)' }),
  uri: Type.String({ description: 'The ss:// line as text (https)' }),
});
const KeyJson = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    password: Type.String({
      description: 'The password as clients enter it ("iPSK:uPSK" for 2022 AES keys)',
    }),
    port: Type.Integer(),
    method: Method,
    accessUrl: Type.String({ description: 'SIP002 ss:// URI' }),
    dataLimit: Type.Optional(LimitOut),
    dataLimitWindow: Type.Optional(Window),
    expiresAt: NullableMillis,
    paused: Type.Boolean(),
    lastSeen: NullableMillis,
    createdAt: Type.Integer(),
    prefix: Type.Union([Type.String(), Type.Null()], {
      description:
        "First-packet disguise: the bytes that replace the start of the client's salt (Outline's prefix " +
        'parameter, carried in accessUrl); null when the key is not disguised',
    }),
    usage: Usage,
    subscriptionUrls: SubscriptionUrls,
  },
  { description: 'An access key' },
);
type KeyJsonT = Static<typeof KeyJson>;

const errorJson = (description: string) =>
  Type.Object(
    {
      code: Type.String({
        description:
          'bad_request, unauthorized, not_found, conflict, payload_too_large, unsupported_media_type or internal',
      }),
      message: Type.String({ description: 'What went wrong, naming the field at fault' }),
    },
    { description },
  );
const e400 = { 400: errorJson('Invalid input (code bad_request)') };
const e401 = { 401: errorJson('No secret prefix and a missing or wrong bearer token (code unauthorized)') };
const e404 = { 404: errorJson('No such access key (code not_found)') };
const e404Path = {
  404: errorJson('Unknown token: the same answer as for any unknown path (code not_found)'),
};
/** No body (typed as undefined, so that reply.code(204).send() takes none). */
const NoContent = Type.Unsafe<undefined>({ type: 'null', description: 'Done' });

const ServerJson = Type.Object(
  {
    name: Type.String(),
    serverId: Type.String(),
    metricsEnabled: Type.Boolean(),
    createdTimestampMs: Type.Integer(),
    version: Type.String(),
    portForNewAccessKeys: Type.Integer(),
    hostnameForAccessKeys: Type.String(),
    accessKeyDataLimit: Type.Optional(LimitOut),
    accessKeyDataLimitWindow: Type.Optional(Window),
    defaultMethod: Method,
    defaultDisguise: Type.Boolean({ description: 'Whether new keys get a first-packet disguise' }),
  },
  { description: 'The server and its settings' },
);

const NewKeyBody = Type.Object(
  {
    name: Type.Optional(KeyName),
    method: Type.Optional(Method),
    password: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 200,
        description:
          'SIP004: any password. 2022: the user PSK, base64 of the key size (the identity PSK is the server’s)',
      }),
    ),
    port: Type.Optional(Port),
    limit: Type.Optional(LimitIn),
    expiresAt: Type.Optional(Type.Union([Millis, Type.Null()])),
    disguise: Type.Optional(
      Type.Boolean({
        description: "First-packet disguise for this key (default: the server's defaultDisguise)",
      }),
    ),
  },
  { additionalProperties: false },
);
const DisguiseBody = Type.Object({ disguise: Type.Boolean() }, { additionalProperties: false });

const Sip008Doc = Type.Object(
  {
    version: Type.Literal(1),
    servers: Type.Array(
      Type.Object({
        id: Type.String(),
        remarks: Type.String(),
        server: Type.String(),
        server_port: Type.Integer(),
        password: Type.String(),
        method: Method,
      }),
    ),
    bytes_used: Type.Optional(Type.Integer()),
    bytes_remaining: Type.Optional(Type.Integer()),
  },
  { description: 'SIP008 document (https://shadowsocks.org/doc/sip008.html)' },
);
const OutlineDoc = Type.Object(
  {
    server: Type.String(),
    server_port: Type.Integer(),
    password: Type.String(),
    method: Method,
    prefix: Type.Optional(Type.String()),
  },
  { description: "Outline's dynamic key config" },
);
const SingBoxDoc = Type.Object(
  {
    outbounds: Type.Array(
      Type.Object({
        type: Type.Literal('shadowsocks'),
        tag: Type.String(),
        server: Type.String(),
        server_port: Type.Integer(),
        method: Method,
        password: Type.String(),
      }),
    ),
  },
  { description: 'sing-box outbounds' },
);

const textResponse = (type: string, description: string) => ({
  description,
  content: { [type]: { schema: { type: 'string' } } },
});

// ---------------------------------------------------------------------------------------------
// Errors

class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
const badRequest = (message: string) => new ApiError(400, 'bad_request', message);
const keyNotFound = (id: string) => new ApiError(404, 'not_found', `access key ${id} not found`);
const NOT_FOUND_BODY = { code: 'not_found', message: 'not found' } as const;

/** "body.limit.bytes must be >= 0": the field named as a path, then what is wrong with it. */
export function describeValidationError(errors: FastifySchemaValidationError[], dataVar: string): string {
  const e = errors[0];
  if (!e) return `${dataVar} is invalid`;
  const path = [
    dataVar,
    ...e.instancePath
      .split('/')
      .filter(Boolean)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')),
  ].join('.');
  const p = e.params;
  switch (e.keyword) {
    case 'required':
      return `${path}.${String(p.missingProperty)} is required`;
    case 'additionalProperties':
      return `${path}.${String(p.additionalProperty)} is not a known field`;
    case 'enum':
      return `${path} must be one of: ${(p.allowedValues as unknown[]).join(', ')}`;
    case 'type':
      return `${path} must be ${/^[aeiou]/.test(String(p.type)) ? 'an' : 'a'} ${String(p.type)}`;
    default:
      return `${path} ${e.message ?? 'is invalid'}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

export { normalizeHostname };

/** Strict base64 (padding optional): Buffer.from skips stray characters; the round trip does not. */
function base64Length(s: string): number {
  const b = Buffer.from(s, 'base64');
  return b.toString('base64').replace(/=+$/, '') === s.replace(/=+$/, '') ? b.length : -1;
}

function checkPassword(method: MethodName, password: string): void {
  const spec = methodSpec(method);
  if (spec.edition === '2022') {
    const n = base64Length(password);
    if (n !== spec.keySize)
      throw badRequest(
        `body.password must be the user key for ${method}: base64 of exactly ${spec.keySize} bytes ` +
          `(e.g. from \`openssl rand -base64 ${spec.keySize}\`)${n < 0 ? '' : `, not ${n} bytes`}`,
      );
    return;
  }
  try {
    encodeURIComponent(password); // throws on unpaired surrogates, which no URI can carry
  } catch {
    throw badRequest('body.password must be valid Unicode text');
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time comparison with the secret (hashes, so that the length does not leak either). */
function secretMatcher(secret: string): (candidate: string) => boolean {
  const want = digest(secret);
  return (candidate) => timingSafeEqual(digest(candidate), want);
}

function toLimit(l: Static<typeof LimitIn>): DataLimit {
  return { bytes: l.bytes, window: l.window ?? 'rolling-30d' };
}

// ---------------------------------------------------------------------------------------------

/**
 * The management API as a fastify instance, ready; the caller listens (or injects, in tests).
 * Routes: see docs/api.md, or GET /openapi.json.
 */
export async function createManagementApi(opts: ManagementApiOptions): Promise<FastifyInstance> {
  const { store } = opts;
  if (!/^[A-Za-z0-9._~-]{16,}$/.test(opts.secret))
    throw new Error('the API secret must be at least 16 characters from A-Z a-z 0-9 - _ . ~');
  const isSecret = secretMatcher(opts.secret);
  const publicUrl = opts.publicUrl.replace(/\/+$/, '');
  const changed = () => {
    opts.onSettingsChange?.();
    opts.onChange?.();
  };

  /** Requests that came in under the secret path prefix (the prefix is gone from their URL by routing time). */
  const underSecret = new WeakSet<object>();

  const app = Fastify({
    ...(opts.log ? { loggerInstance: opts.log } : { logger: false }),
    // No per-request log lines: URLs carry the secret and subscription tokens.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: API_BODY_LIMIT,
    // Unknown fields are a mistake to report, not to drop; "5" is not a port.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    schemaErrorFormatter: (errors, dataVar) => new Error(describeValidationError(errors, dataVar)),
    rewriteUrl: (req) => {
      const url = req.url ?? '/';
      const end = url.slice(1).search(/[/?#]/);
      const first = end < 0 ? url.slice(1) : url.slice(1, end + 1);
      if (!first || !isSecret(first)) return url;
      underSecret.add(req);
      const rest = url.slice(first.length + 1);
      return rest.startsWith('/') ? rest : `/${rest}`;
    },
    ...(opts.tls
      ? { https: { key: opts.tls.key, cert: opts.tls.cert, minVersion: 'TLSv1.2' as const } }
      : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Pigeon management API',
        version: '1',
        description:
          'Manages the access keys of a Pigeon server. Every path except /sub/… is served under the secret ' +
          'path prefix (https://HOST:PORT/SECRET/access-keys, as Outline does), or without it when the ' +
          'request carries "Authorization: Bearer SECRET". The certificate is self-signed: pin its SHA-256 ' +
          'fingerprint (certSha256).',
      },
      tags: [
        { name: 'Server', description: 'Server-wide settings' },
        { name: 'Access keys', description: 'Keys, their limits, expiry and usage' },
        { name: 'Metrics', description: 'Usage and Prometheus metrics' },
        {
          name: 'Subscriptions',
          description: "Per-key documents apps refresh; the key's token is the secret",
        },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('cache-control', 'no-store');
    reply.header('x-content-type-options', 'nosniff');
    return payload;
  });

  // An empty body with a JSON content-type is no body (so POST /access-keys works from clients that
  // always send the header); routes that need a body then say "body must be an object".
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, undefined);
    parseJson(req, text, done);
  });

  app.setNotFoundHandler((_req, reply) => reply.code(404).send(NOT_FOUND_BODY));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const send = (status: number, code: string, message: string) =>
      reply.code(status).send({ code, message });
    if (err instanceof ApiError) return send(err.statusCode, err.code, err.message);
    if (err.validation) return send(400, 'bad_request', err.message);
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
      return send(400, 'bad_request', 'body is not valid JSON');
    if (err.name === 'StoreError') return send(400, 'bad_request', err.message);
    if (err.statusCode === 413)
      return send(413, 'payload_too_large', `the body is larger than ${API_BODY_LIMIT} bytes`);
    if (err.statusCode === 415)
      return send(415, 'unsupported_media_type', 'send the body as application/json');
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
      return send(err.statusCode, 'bad_request', err.message);
    req.log.error({ err, method: req.method, route: req.routeOptions.url }, 'management API request failed');
    return send(500, 'internal', 'internal error');
  });

  // ---- key JSON

  const keyJson = (k: AccessKey, s: ServerSettings, usage: KeyUsage): KeyJsonT => ({
    id: k.id,
    name: k.name,
    password: clientPassword(k, s),
    port: k.port,
    method: k.method,
    accessUrl: accessUri(k, s),
    ...(k.dataLimit ? { dataLimit: { bytes: k.dataLimit.bytes }, dataLimitWindow: k.dataLimit.window } : {}),
    expiresAt: k.expiresAt,
    paused: k.paused,
    lastSeen: k.lastSeen,
    createdAt: k.createdAt,
    prefix: k.prefix,
    usage,
    subscriptionUrls: {
      sip008: subscriptionUrl(publicUrl, k.token, SUBSCRIPTION_FILES.sip008),
      ssconf: ssconfUrl(publicUrl, k.token),
      outline: subscriptionUrl(publicUrl, k.token, SUBSCRIPTION_FILES.outline),
      clash: subscriptionUrl(publicUrl, k.token, SUBSCRIPTION_FILES.clash),
      singBox: subscriptionUrl(publicUrl, k.token, SUBSCRIPTION_FILES.singBox),
      uri: subscriptionUrl(publicUrl, k.token, SUBSCRIPTION_FILES.uri),
    },
  });
  /** The settings, when keys can be shown: their URIs need the host name. */
  const keySettings = (): ServerSettings => {
    const s = store.settings();
    if (!s.hostname)
      throw new ApiError(
        409,
        'conflict',
        'the server has no hostname for access keys yet: set one with PUT /server/hostname-for-access-keys',
      );
    return s;
  };
  const oneKeyJson = (k: AccessKey) => keyJson(k, keySettings(), store.usage(k.id));
  const mustGet = (id: string): AccessKey => {
    const k = store.getKey(id);
    if (!k) throw keyNotFound(id);
    return k;
  };
  const patchKey = (id: string, patch: Parameters<KeyStore['updateKey']>[1]): void => {
    if (!store.updateKey(id, patch)) throw keyNotFound(id);
    changed();
  };

  /** Makes and saves the method's SIP023 identity PSK on its first key (2022 AES methods only). */
  const ensureIdentityPsk = (method: MethodName): void => {
    if (!usesIdentityPsk(method)) return;
    const s = store.settings();
    if (s.identityPsks[method]) return;
    const psk = randomBytes(methodSpec(method).keySize).toString('base64');
    store.updateSettings({ identityPsks: { ...s.identityPsks, [method]: psk } });
  };

  // ---- management routes (secret prefix or bearer)

  await app.register(async (scope) => {
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    r.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      if (underSecret.has(req.raw)) return;
      const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
      if (m && isSecret(m[1]!)) return;
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ code: 'unauthorized', message: 'missing or wrong bearer token' });
    });
    const server = <T extends object>(o: T) => ({ tags: ['Server'], ...o });
    const keys = <T extends object>(o: T) => ({ tags: ['Access keys'], ...o });

    r.get(
      '/server',
      {
        schema: server({
          operationId: 'getServer',
          summary: 'Server information and settings',
          response: { 200: ServerJson, ...e401 },
        }),
      },
      async () => {
        const s = store.settings();
        return {
          name: s.name,
          serverId: s.serverId,
          metricsEnabled: true,
          createdTimestampMs: s.createdAt,
          version: opts.version,
          portForNewAccessKeys: s.portForNewKeys,
          hostnameForAccessKeys: s.hostname,
          ...(s.defaultDataLimit
            ? {
                accessKeyDataLimit: { bytes: s.defaultDataLimit.bytes },
                accessKeyDataLimitWindow: s.defaultDataLimit.window,
              }
            : {}),
          defaultMethod: s.defaultMethod,
          defaultDisguise: s.defaultDisguise,
        };
      },
    );

    r.put(
      '/name',
      {
        schema: server({
          operationId: 'renameServer',
          summary: 'Renames the server',
          body: Type.Object(
            { name: Type.String({ minLength: 1, maxLength: 100 }) },
            { additionalProperties: false },
          ),
          response: { 204: NoContent, ...e400, ...e401 },
        }),
      },
      async (req, reply) => {
        store.updateSettings({ name: req.body.name });
        changed();
        return reply.code(204).send();
      },
    );

    r.put(
      '/server/hostname-for-access-keys',
      {
        schema: server({
          operationId: 'setHostnameForAccessKeys',
          summary: 'Sets the host name or IP address put into access keys and subscriptions',
          body: Type.Object(
            { hostname: Type.String({ minLength: 1, maxLength: 255 }) },
            { additionalProperties: false },
          ),
          response: { 204: NoContent, ...e400, ...e401 },
        }),
      },
      async (req, reply) => {
        const hostname = normalizeHostname(req.body.hostname);
        if (!hostname) throw badRequest('body.hostname must be a host name or an IP address');
        store.updateSettings({ hostname });
        changed();
        return reply.code(204).send();
      },
    );

    r.put(
      '/server/port-for-new-access-keys',
      {
        schema: server({
          operationId: 'setPortForNewAccessKeys',
          summary: 'Sets the port given to keys created from now on',
          body: Type.Object({ port: Port }, { additionalProperties: false }),
          response: { 204: NoContent, ...e400, ...e401 },
        }),
      },
      async (req, reply) => {
        store.updateSettings({ portForNewKeys: req.body.port });
        changed();
        return reply.code(204).send();
      },
    );

    r.put(
      '/server/access-key-data-limit',
      {
        schema: server({
          operationId: 'setDefaultDataLimit',
          summary: 'Sets the data limit of every key without one of its own',
          body: LimitBody,
          response: { 204: NoContent, ...e400, ...e401 },
        }),
      },
      async (req, reply) => {
        store.updateSettings({ defaultDataLimit: toLimit(req.body.limit) });
        changed();
        return reply.code(204).send();
      },
    );

    r.put(
      '/server/default-disguise',
      {
        schema: server({
          operationId: 'setDefaultDisguise',
          summary: 'Sets whether keys created from now on get a first-packet disguise',
          body: DisguiseBody,
          response: { 204: NoContent, ...e400, ...e401 },
        }),
      },
      async (req, reply) => {
        store.updateSettings({ defaultDisguise: req.body.disguise });
        changed();
        return reply.code(204).send();
      },
    );

    r.delete(
      '/server/access-key-data-limit',
      {
        schema: server({
          operationId: 'removeDefaultDataLimit',
          summary: 'Removes the server-wide data limit',
          response: { 204: NoContent, ...e401 },
        }),
      },
      async (_req, reply) => {
        store.updateSettings({ defaultDataLimit: null });
        changed();
        return reply.code(204).send();
      },
    );

    r.post(
      '/access-keys',
      {
        schema: keys({
          operationId: 'createAccessKey',
          summary: 'Creates an access key',
          description:
            'The key gets the port for new keys and the default method unless given. The first 2022 AES ' +
            "key of a method also creates that method's identity PSK, which all its keys share. A body is optional.",
          body: NewKeyBody,
          response: {
            201: KeyJson,
            ...e400,
            ...e401,
            409: errorJson('Another key of this method on this port has this password (code conflict)'),
          },
        }),
        // No body is an empty one (Outline's API takes POST /access-keys without a body).
        preValidation: async (req) => {
          if (req.body === undefined || req.body === null) req.body = {};
        },
      },
      async (req, reply) => {
        const b = req.body;
        const s = keySettings();
        const method = b.method ?? s.defaultMethod;
        const port = b.port ?? s.portForNewKeys;
        if (b.password !== undefined) {
          checkPassword(method, b.password);
          const clash = store
            .listKeys()
            .find((k) => k.port === port && k.method === method && k.secret === b.password);
          if (clash)
            throw new ApiError(
              409,
              'conflict',
              `access key ${clash.id} already uses this password with ${method} on port ${port}`,
            );
        }
        ensureIdentityPsk(method);
        const k = store.createKey({
          ...(b.name !== undefined ? { name: b.name } : {}),
          method,
          port,
          ...(b.password !== undefined ? { secret: b.password } : {}),
          dataLimit: b.limit ? toLimit(b.limit) : null,
          expiresAt: b.expiresAt ?? null,
          prefix: prefixForNewKey(method, b.disguise, s),
        });
        changed();
        return reply.code(201).send(oneKeyJson(k));
      },
    );

    r.get(
      '/access-keys',
      {
        schema: keys({
          operationId: 'listAccessKeys',
          summary: 'Lists the access keys',
          response: {
            200: Type.Object({ accessKeys: Type.Array(KeyJson) }, { description: 'Every access key' }),
            ...e401,
          },
        }),
      },
      async () => {
        const s = keySettings();
        const usage = store.usageAll();
        return {
          accessKeys: store.listKeys().map((k) => keyJson(k, s, usage.get(k.id) ?? { total: 0, last30d: 0 })),
        };
      },
    );

    r.get(
      '/access-keys/:id',
      {
        schema: keys({
          operationId: 'getAccessKey',
          summary: 'One access key',
          params: Id,
          response: { 200: KeyJson, ...e404, ...e401 },
        }),
      },
      async (req) => oneKeyJson(mustGet(req.params.id)),
    );

    r.delete(
      '/access-keys/:id',
      {
        schema: keys({
          operationId: 'deleteAccessKey',
          summary: 'Deletes an access key (and its usage)',
          params: Id,
          response: { 204: NoContent, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        if (!store.deleteKey(req.params.id)) throw keyNotFound(req.params.id);
        changed();
        return reply.code(204).send();
      },
    );

    r.put(
      '/access-keys/:id/name',
      {
        schema: keys({
          operationId: 'renameAccessKey',
          summary: 'Renames an access key',
          params: Id,
          body: Type.Object({ name: KeyName }, { additionalProperties: false }),
          response: { 204: NoContent, ...e400, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        patchKey(req.params.id, { name: req.body.name });
        return reply.code(204).send();
      },
    );

    r.put(
      '/access-keys/:id/data-limit',
      {
        schema: keys({
          operationId: 'setAccessKeyDataLimit',
          summary: "Sets a key's data limit",
          params: Id,
          body: LimitBody,
          response: { 204: NoContent, ...e400, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        patchKey(req.params.id, { dataLimit: toLimit(req.body.limit) });
        return reply.code(204).send();
      },
    );

    r.delete(
      '/access-keys/:id/data-limit',
      {
        schema: keys({
          operationId: 'removeAccessKeyDataLimit',
          summary: "Removes a key's own data limit (the server-wide one, if any, applies again)",
          params: Id,
          response: { 204: NoContent, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        patchKey(req.params.id, { dataLimit: null });
        return reply.code(204).send();
      },
    );

    r.put(
      '/access-keys/:id/disguise',
      {
        schema: keys({
          operationId: 'setAccessKeyDisguise',
          summary: "Turns a key's first-packet disguise on (a new prefix) or off",
          description:
            "The key's URI changes: apps that read the prefix parameter need the new one (subscriptions follow by themselves).",
          params: Id,
          body: DisguiseBody,
          response: { 204: NoContent, ...e400, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        const k = mustGet(req.params.id);
        if (req.body.disguise !== (k.prefix !== null)) {
          patchKey(k.id, { prefix: req.body.disguise ? newDisguisePrefix(k.method) : null });
        }
        return reply.code(204).send();
      },
    );

    r.put(
      '/access-keys/:id/paused',
      {
        schema: keys({
          operationId: 'setAccessKeyPaused',
          summary: 'Pauses or resumes a key',
          params: Id,
          body: Type.Object({ paused: Type.Boolean() }, { additionalProperties: false }),
          response: { 204: NoContent, ...e400, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        patchKey(req.params.id, { paused: req.body.paused });
        return reply.code(204).send();
      },
    );

    for (const [action, paused] of [
      ['pause', true],
      ['resume', false],
    ] as const) {
      r.post(
        `/access-keys/:id/${action}`,
        {
          schema: keys({
            operationId: `${action}AccessKey`,
            summary: paused ? 'Pauses a key' : 'Resumes a key',
            params: Id,
            response: { 204: NoContent, ...e404, ...e401 },
          }),
        },
        async (req, reply) => {
          patchKey(req.params.id, { paused });
          return reply.code(204).send();
        },
      );
    }

    r.put(
      '/access-keys/:id/expiry',
      {
        schema: keys({
          operationId: 'setAccessKeyExpiry',
          summary: 'Sets when a key stops working',
          params: Id,
          body: Type.Object({ expiresAt: Millis }, { additionalProperties: false }),
          response: { 204: NoContent, ...e400, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        patchKey(req.params.id, { expiresAt: req.body.expiresAt });
        return reply.code(204).send();
      },
    );

    r.delete(
      '/access-keys/:id/expiry',
      {
        schema: keys({
          operationId: 'removeAccessKeyExpiry',
          summary: "Removes a key's expiry",
          params: Id,
          response: { 204: NoContent, ...e404, ...e401 },
        }),
      },
      async (req, reply) => {
        patchKey(req.params.id, { expiresAt: null });
        return reply.code(204).send();
      },
    );

    r.get(
      '/access-keys/:id/usage',
      {
        schema: keys({
          operationId: 'getAccessKeyUsage',
          summary: 'Bytes a key relayed',
          params: Id,
          response: { 200: Usage, ...e404, ...e401 },
        }),
      },
      async (req) => {
        mustGet(req.params.id);
        return store.usage(req.params.id);
      },
    );

    r.get(
      '/metrics/transfer',
      {
        schema: {
          tags: ['Metrics'],
          operationId: 'getTransfer',
          summary: 'Bytes relayed per key in the last 30 days (Outline)',
          response: {
            200: Type.Object(
              { bytesTransferredByUserId: Type.Object({}, { additionalProperties: Type.Integer() }) },
              { description: 'Key id → bytes' },
            ),
            ...e401,
          },
        },
      },
      async () => {
        const out: Record<string, number> = {};
        for (const [id, u] of store.usageAll()) out[id] = u.last30d;
        return { bytesTransferredByUserId: out };
      },
    );

    r.get(
      '/metrics',
      {
        schema: {
          tags: ['Metrics'],
          operationId: 'getPrometheusMetrics',
          summary: 'Prometheus metrics (text exposition format)',
          response: {
            200: textResponse('text/plain', 'Prometheus text format 0.0.4'),
            ...e401,
          },
        },
      },
      async (_req, reply) => reply.type(opts.metrics.contentType).send(await opts.metrics.text()),
    );

    r.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  });

  // ---- subscriptions: no secret; the key's token is one. Unknown tokens get the unknown-path 404.

  await app.register(async (scope) => {
    const r = scope.withTypeProvider<TypeBoxTypeProvider>();
    const sub = <T extends TSchema | Record<string, unknown>>(
      operationId: string,
      summary: string,
      ok: T,
    ) => ({
      schema: {
        tags: ['Subscriptions'],
        operationId,
        summary,
        security: [],
        params: Token,
        response: { 200: ok, ...e404Path },
      },
    });
    const notFound = (reply: FastifyReply): FastifyReply => {
      reply.callNotFound();
      return reply;
    };
    const byToken = (req: FastifyRequest<{ Params: { token: string } }>): AccessKey | undefined =>
      store.getKeyByToken(req.params.token);
    /** Usage for apps that show it: Clash's subscription-userinfo header. */
    const userInfo = (k: AccessKey, s: ServerSettings): string => {
      const t = keyTraffic(k, s, store.usage(k.id));
      const parts = [`upload=0`, `download=${t.bytesUsed}`];
      if (t.bytesRemaining !== undefined) parts.push(`total=${t.bytesUsed + t.bytesRemaining}`);
      if (k.expiresAt !== null) parts.push(`expire=${Math.floor(k.expiresAt / 1000)}`);
      return parts.join('; ');
    };

    r.get(
      `/sub/:token/${SUBSCRIPTION_FILES.sip008}`,
      sub('getSip008', 'SIP008 online config for one key', Sip008Doc),
      async (req, reply) => {
        const k = byToken(req);
        if (!k) return notFound(reply);
        const s = keySettings();
        return reply.send(sip008Json([k], s, keyTraffic(k, s, store.usage(k.id))));
      },
    );
    r.get(
      `/sub/:token/${SUBSCRIPTION_FILES.outline}`,
      sub('getOutlineConfig', "What Outline's client reads behind the ssconf:// key", OutlineDoc),
      async (req, reply) => {
        const k = byToken(req);
        if (!k) return notFound(reply);
        return reply.send(outlineJson(k, keySettings()));
      },
    );
    r.get(
      `/sub/:token/${SUBSCRIPTION_FILES.clash}`,
      sub('getClashProfile', 'Clash / mihomo profile for one key', textResponse('text/yaml', 'Clash YAML')),
      async (req, reply) => {
        const k = byToken(req);
        if (!k) return notFound(reply);
        const s = keySettings();
        return reply
          .type('text/yaml; charset=utf-8')
          .header('subscription-userinfo', userInfo(k, s))
          .header('profile-update-interval', '12')
          .send(clashYaml([k], s));
      },
    );
    r.get(
      `/sub/:token/${SUBSCRIPTION_FILES.singBox}`,
      sub('getSingBoxOutbounds', 'sing-box outbounds for one key', SingBoxDoc),
      async (req, reply) => {
        const k = byToken(req);
        if (!k) return notFound(reply);
        const s = keySettings();
        return reply.header('subscription-userinfo', userInfo(k, s)).send(singBoxJson([k], s));
      },
    );
    r.get(
      `/sub/:token/${SUBSCRIPTION_FILES.uri}`,
      sub('getSsUri', 'The ss:// URI of one key, as a line of text', textResponse('text/plain', 'ss:// URI')),
      async (req, reply) => {
        const k = byToken(req);
        if (!k) return notFound(reply);
        return reply.type('text/plain; charset=utf-8').send(`${accessUri(k, keySettings())}\n`);
      },
    );
  });

  // ---- the web admin page (HTML, session cookie after a login with the secret; not in the OpenAPI document)

  await app.register(adminPage, {
    prefix: '/admin',
    ...opts.admin,
    store,
    metrics: opts.metrics,
    secret: opts.secret,
    publicUrl,
    version: opts.version,
    changed,
  });

  await app.ready();
  return app;
}
