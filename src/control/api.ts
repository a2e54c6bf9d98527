// The management REST API (fastify + TypeBox: one schema validates, serializes and documents each
// route). Outline's shape where it fits, extended with pause/resume, expiry, usage and subscriptions.
// Guarded by a secret: as a path prefix (https://host:port/SECRET/access-keys, Outline's form) or as
// a bearer token. Subscription documents live on each key's own unguessable path.
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { METHODS, type MethodName } from '../wire/shadowsocks-methods.js';
import type { AccessKey, KeyStore } from './types.js';
import type { PrometheusMetrics } from './metrics.js';
import { createAccessKey } from './keys.js';
import { StoreError } from './sqlite-store.js';
import { accessUri, clashYaml, clientPassword, sip008Json, singBoxJson, ssconfUrl } from './share.js';

export interface ApiOptions {
  store: KeyStore;
  metrics: PrometheusMetrics;
  secret: string;
  tls?: { key: string; cert: string };
  version: string;
  /** e.g. https://203.0.113.7:35021 — the base of subscription URLs. */
  publicUrl: string;
  onChange?: () => void;
}

const Id = Type.Object({ id: Type.String({ maxLength: 20 }) });
const Limit = Type.Object({
  bytes: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  window: Type.Optional(Type.Union([Type.Literal('rolling-30d'), Type.Literal('total')])),
});
const Method = Type.Unsafe<MethodName>({ type: 'string', enum: [...METHODS] });
const Usage = Type.Object({ total: Type.Integer(), last30d: Type.Integer() });
const KeyJson = Type.Object({
  id: Type.String(),
  name: Type.String(),
  password: Type.String(),
  port: Type.Integer(),
  method: Method,
  accessUrl: Type.String(),
  dataLimit: Type.Optional(Type.Object({ bytes: Type.Integer() })),
  dataLimitWindow: Type.Optional(Type.String()),
  expiresAt: Type.Union([Type.Integer(), Type.Null()]),
  paused: Type.Boolean(),
  lastSeen: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: Type.Integer(),
  usage: Usage,
  subscriptionUrls: Type.Object({
    sip008: Type.String(),
    ssconf: Type.String(),
    clash: Type.String(),
    singBox: Type.String(),
  }),
});
const ErrorJson = Type.Object({ code: Type.String(), message: Type.String() });
const ServerJson = Type.Object({
  name: Type.String(),
  serverId: Type.String(),
  metricsEnabled: Type.Boolean(),
  createdTimestampMs: Type.Integer(),
  version: Type.String(),
  portForNewAccessKeys: Type.Integer(),
  hostnameForAccessKeys: Type.String(),
  defaultMethod: Method,
  accessKeyDataLimit: Type.Optional(Type.Object({ bytes: Type.Integer() })),
});
const NewKeyBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 100 })),
    method: Type.Optional(Method),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    limit: Type.Optional(Limit),
    expiresAt: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])),
  },
  { additionalProperties: false },
);

const errors = { 400: ErrorJson, 404: ErrorJson };

class NotFound extends Error {}

function hostnameOk(h: string): boolean {
  return (
    isIP(h) !== 0 ||
    /^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
      h,
    )
  );
}

export async function createManagementApi(opts: ApiOptions): Promise<FastifyInstance> {
  const { store, secret } = opts;
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // Unknown fields are a mistake to report, not to drop silently.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    ...(opts.tls ? { https: { key: opts.tls.key, cert: opts.tls.cert } } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(swagger, {
    openapi: {
      info: {
        title: 'Pigeon management API',
        version: '1',
        description:
          'Every path is served under the secret prefix (https://HOST:PORT/SECRET/…), or without it with the header "Authorization: Bearer SECRET".',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, _req, reply) => {
    if (err instanceof NotFound) return reply.code(404).send({ code: 'not_found', message: err.message });
    if (err.validation || err instanceof StoreError || (err.statusCode && err.statusCode < 500)) {
      return reply
        .code(err.statusCode && err.statusCode < 500 && err.statusCode !== 404 ? err.statusCode : 400)
        .send({
          code: 'bad_request',
          message: err.message,
        });
    }
    return reply.code(500).send({ code: 'internal', message: 'internal error' });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ code: 'not_found', message: 'not found' }));

  const sub = (k: AccessKey) => {
    const base = `${opts.publicUrl}/sub/${k.token}`;
    return {
      sip008: `${base}/sip008.json`,
      ssconf: ssconfUrl(`${base}/sip008.json`),
      clash: `${base}/clash.yaml`,
      singBox: `${base}/sing-box.json`,
    };
  };
  const keyJson = (k: AccessKey): Static<typeof KeyJson> => {
    const s = store.settings();
    return {
      id: k.id,
      name: k.name,
      password: clientPassword(k, s),
      port: k.port,
      method: k.method,
      accessUrl: accessUri(k, s),
      ...(k.dataLimit
        ? { dataLimit: { bytes: k.dataLimit.bytes }, dataLimitWindow: k.dataLimit.window }
        : {}),
      expiresAt: k.expiresAt,
      paused: k.paused,
      lastSeen: k.lastSeen,
      createdAt: k.createdAt,
      usage: store.usage(k.id),
      subscriptionUrls: sub(k),
    };
  };
  const must = (id: string): AccessKey => {
    const k = store.getKey(id);
    if (!k) throw new NotFound(`access key ${id} not found`);
    return k;
  };
  const changed = () => opts.onChange?.();
  const patch = (id: string, p: Parameters<KeyStore['updateKey']>[1]) => {
    must(id);
    store.updateKey(id, p);
    changed();
  };

  const routes = async (r: typeof app, hide: boolean): Promise<void> => {
    const s = (schema: Record<string, unknown>) => ({ ...schema, hide });
    r.get('/server', { schema: s({ response: { 200: ServerJson } }) }, async () => {
      const st = store.settings();
      return {
        name: st.name,
        serverId: st.serverId,
        metricsEnabled: true,
        createdTimestampMs: st.createdAt,
        version: opts.version,
        portForNewAccessKeys: st.portForNewKeys,
        hostnameForAccessKeys: st.hostname,
        defaultMethod: st.defaultMethod,
        ...(st.defaultDataLimit ? { accessKeyDataLimit: { bytes: st.defaultDataLimit.bytes } } : {}),
      };
    });
    r.put(
      '/name',
      {
        schema: s({
          body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        store.updateSettings({ name: (req.body as { name: string }).name });
        return reply.code(204).send();
      },
    );
    r.put(
      '/server/hostname-for-access-keys',
      {
        schema: s({
          body: Type.Object({ hostname: Type.String({ minLength: 1, maxLength: 253 }) }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        const { hostname } = req.body as { hostname: string };
        if (!hostnameOk(hostname))
          return reply.code(400).send({
            code: 'bad_request',
            message: `hostname "${hostname}" is not a host name or IP address`,
          });
        store.updateSettings({ hostname });
        changed();
        return reply.code(204).send();
      },
    );
    r.put(
      '/server/port-for-new-access-keys',
      {
        schema: s({
          body: Type.Object({ port: Type.Integer({ minimum: 1, maximum: 65535 }) }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        store.updateSettings({ portForNewKeys: (req.body as { port: number }).port });
        return reply.code(204).send();
      },
    );
    r.put(
      '/server/access-key-data-limit',
      { schema: s({ body: Type.Object({ limit: Limit }), response: { 204: Type.Null(), ...errors } }) },
      async (req, reply) => {
        const { limit } = req.body as { limit: Static<typeof Limit> };
        store.updateSettings({
          defaultDataLimit: { bytes: limit.bytes, window: limit.window ?? 'rolling-30d' },
        });
        changed();
        return reply.code(204).send();
      },
    );
    r.delete(
      '/server/access-key-data-limit',
      { schema: s({ response: { 204: Type.Null() } }) },
      async (_req, reply) => {
        store.updateSettings({ defaultDataLimit: null });
        changed();
        return reply.code(204).send();
      },
    );

    r.post(
      '/access-keys',
      { schema: s({ body: Type.Optional(NewKeyBody), response: { 201: KeyJson, ...errors } }) },
      async (req, reply) => {
        const b = (req.body ?? {}) as Static<typeof NewKeyBody>;
        const k = createAccessKey(store, {
          name: b.name,
          method: b.method as MethodName | undefined,
          secret: b.password,
          dataLimit: b.limit ? { bytes: b.limit.bytes, window: b.limit.window ?? 'rolling-30d' } : null,
          expiresAt: b.expiresAt ?? null,
        });
        changed();
        return reply.code(201).send(keyJson(k));
      },
    );
    r.get(
      '/access-keys',
      { schema: s({ response: { 200: Type.Object({ accessKeys: Type.Array(KeyJson) }) } }) },
      async () => ({
        accessKeys: store.listKeys().map(keyJson),
      }),
    );
    r.get(
      '/access-keys/:id',
      { schema: s({ params: Id, response: { 200: KeyJson, ...errors } }) },
      async (req) => keyJson(must((req.params as { id: string }).id)),
    );
    r.delete(
      '/access-keys/:id',
      { schema: s({ params: Id, response: { 204: Type.Null(), ...errors } }) },
      async (req, reply) => {
        const { id } = req.params as { id: string };
        if (!store.deleteKey(id)) throw new NotFound(`access key ${id} not found`);
        changed();
        return reply.code(204).send();
      },
    );
    r.put(
      '/access-keys/:id/name',
      {
        schema: s({
          params: Id,
          body: Type.Object({ name: Type.String({ maxLength: 100 }) }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        patch((req.params as { id: string }).id, { name: (req.body as { name: string }).name });
        return reply.code(204).send();
      },
    );
    r.put(
      '/access-keys/:id/data-limit',
      {
        schema: s({
          params: Id,
          body: Type.Object({ limit: Limit }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        const { limit } = req.body as { limit: Static<typeof Limit> };
        patch((req.params as { id: string }).id, {
          dataLimit: { bytes: limit.bytes, window: limit.window ?? 'rolling-30d' },
        });
        return reply.code(204).send();
      },
    );
    r.delete(
      '/access-keys/:id/data-limit',
      { schema: s({ params: Id, response: { 204: Type.Null(), ...errors } }) },
      async (req, reply) => {
        patch((req.params as { id: string }).id, { dataLimit: null });
        return reply.code(204).send();
      },
    );
    r.put(
      '/access-keys/:id/paused',
      {
        schema: s({
          params: Id,
          body: Type.Object({ paused: Type.Boolean() }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        patch((req.params as { id: string }).id, { paused: (req.body as { paused: boolean }).paused });
        return reply.code(204).send();
      },
    );
    for (const [action, paused] of [
      ['pause', true],
      ['resume', false],
    ] as const) {
      r.post(
        `/access-keys/:id/${action}`,
        { schema: s({ params: Id, response: { 204: Type.Null(), ...errors } }) },
        async (req, reply) => {
          patch((req.params as { id: string }).id, { paused });
          return reply.code(204).send();
        },
      );
    }
    r.put(
      '/access-keys/:id/expiry',
      {
        schema: s({
          params: Id,
          body: Type.Object({ expiresAt: Type.Integer({ minimum: 0 }) }),
          response: { 204: Type.Null(), ...errors },
        }),
      },
      async (req, reply) => {
        patch((req.params as { id: string }).id, {
          expiresAt: (req.body as { expiresAt: number }).expiresAt,
        });
        return reply.code(204).send();
      },
    );
    r.delete(
      '/access-keys/:id/expiry',
      { schema: s({ params: Id, response: { 204: Type.Null(), ...errors } }) },
      async (req, reply) => {
        patch((req.params as { id: string }).id, { expiresAt: null });
        return reply.code(204).send();
      },
    );
    r.get(
      '/access-keys/:id/usage',
      { schema: s({ params: Id, response: { 200: Usage, ...errors } }) },
      async (req) => {
        const { id } = req.params as { id: string };
        must(id);
        return store.usage(id);
      },
    );
    r.get(
      '/metrics/transfer',
      {
        schema: s({
          response: {
            200: Type.Object({ bytesTransferredByUserId: Type.Record(Type.String(), Type.Integer()) }),
          },
        }),
      },
      async () => {
        const out: Record<string, number> = {};
        for (const [id, u] of store.usageAll()) out[id] = u.last30d;
        return { bytesTransferredByUserId: out };
      },
    );
    r.get('/metrics', { schema: s({ produces: ['text/plain'] }) }, async (_req, reply) =>
      reply.type(opts.metrics.contentType).send(await opts.metrics.text()),
    );
    r.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  };

  // Outline's form: the secret as the first path segment. Hidden from the document (it holds the secret).
  await app.register(async (r) => routes(r as unknown as typeof app, true), { prefix: `/${secret}` });
  // The bearer form: documented.
  await app.register(async (r) => {
    r.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
      if (!bearerOk(req.headers.authorization, secret)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer')
          .send({ code: 'unauthorized', message: 'missing or wrong bearer token' });
      }
    });
    await routes(r as unknown as typeof app, false);
  });

  // Subscriptions: the per-key token is the secret; unknown tokens look like any unknown path.
  const byToken = (token: string): AccessKey => {
    const k = store.getKeyByToken(token);
    if (!k) throw new NotFound('not found');
    return k;
  };
  const Token = Type.Object({ token: Type.String({ maxLength: 64 }) });
  app.get('/sub/:token/sip008.json', { schema: { hide: true, params: Token } }, async (req) => {
    const k = byToken((req.params as { token: string }).token);
    return sip008Json(k, store.settings(), store.usage(k.id));
  });
  app.get('/sub/:token/clash.yaml', { schema: { hide: true, params: Token } }, async (req, reply) =>
    reply
      .type('text/yaml; charset=utf-8')
      .send(clashYaml(byToken((req.params as { token: string }).token), store.settings())),
  );
  app.get('/sub/:token/sing-box.json', { schema: { hide: true, params: Token } }, async (req) =>
    singBoxJson(byToken((req.params as { token: string }).token), store.settings()),
  );
  app.get('/sub/:token/uri.txt', { schema: { hide: true, params: Token } }, async (req, reply) =>
    reply
      .type('text/plain; charset=utf-8')
      .send(`${accessUri(byToken((req.params as { token: string }).token), store.settings())}\n`),
  );
  await app.ready();
  return app;
}

function bearerOk(header: string | undefined, secret: string): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}
