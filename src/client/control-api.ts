// The client's local control API (127.0.0.1 by default, bearer token): live connections with their
// destination, matched rule, server and bytes; server groups and their health, with manual selection for
// `select` groups; and a dry-run of the rules. Clash's external controller plays the same part.
import { createHash, timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { makeAddress, type Address } from '../wire/socks-address.js';
import type { ConnectionTable } from './connections.js';
import type { Router } from './router.js';

export interface ControlGroup {
  status(): unknown;
  select?(name: string): void;
  readonly kind: string;
}

export interface ControlApiOptions {
  token: string;
  connections: ConnectionTable;
  router: Router;
  groups: ReadonlyMap<string, ControlGroup>;
  info: () => Record<string, unknown>;
}

const Select = Type.Object(
  { server: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);
const RouteQuery = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 255 }),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    network: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
    inbound: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function createControlApi(opts: ControlApiOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 }).withTypeProvider<TypeBoxTypeProvider>();
  const want = digest(opts.token);
  app.addHook('onRequest', async (req, reply) => {
    const h = req.headers.authorization ?? '';
    const token = h.startsWith('Bearer ') ? h.slice(7) : '';
    if (!timingSafeEqual(digest(token), want)) {
      return reply.code(401).send({ code: 'unauthorized', message: 'missing or wrong bearer token' });
    }
  });
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    void reply.code(status).send({ code: status === 500 ? 'internal' : 'bad-request', message: err.message });
  });

  app.get('/status', async () => ({ ...opts.info(), connections: opts.connections.summary() }));
  app.get('/connections', async () => ({ connections: opts.connections.list() }));
  app.get('/groups', async () => ({ groups: [...opts.groups.values()].map((g) => g.status()) }));
  app.put<{ Params: { name: string }; Body: Static<typeof Select> }>(
    '/groups/:name',
    { schema: { body: Select } },
    async (req, reply) => {
      const g = opts.groups.get(req.params.name);
      if (!g)
        return reply.code(404).send({ code: 'not-found', message: `no group named "${req.params.name}"` });
      if (g.kind !== 'select' || !g.select) {
        return reply
          .code(409)
          .send({ code: 'not-select', message: `group "${req.params.name}" is ${g.kind}, not select` });
      }
      try {
        g.select(req.body.server);
      } catch (e) {
        return reply.code(404).send({ code: 'not-found', message: (e as Error).message });
      }
      return g.status();
    },
  );
  app.get<{ Querystring: Static<typeof RouteQuery> }>(
    '/route',
    { schema: { querystring: RouteQuery } },
    async (req, reply) => {
      let target: Address;
      try {
        target = makeAddress(req.query.host, req.query.port ?? 443);
      } catch (e) {
        return reply.code(400).send({ code: 'bad-request', message: (e as Error).message });
      }
      const d = opts.router.decide(target, req.query.network ?? 'tcp', req.query.inbound ?? 'mixed');
      const t = d.target;
      return { target: t.kind === 'group' ? t.name : t.kind.toUpperCase(), rule: d.rule, domain: d.domain };
    },
  );
  await app.ready();
  return app;
}
