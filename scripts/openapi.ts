// Writes docs/openapi.json from the API's route schemas (npm run openapi).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createManagementApi } from '../src/control/api.js';
import { openStore } from '../src/control/sqlite-store.js';
import { PrometheusMetrics } from '../src/control/metrics.js';

const dir = mkdtempSync(join(tmpdir(), 'pigeon-openapi-'));
const store = openStore(dir);
const app = await createManagementApi({
  store,
  metrics: new PrometheusMetrics(),
  secret: 'unused-secret-for-the-document',
  version: 'doc',
  publicUrl: 'https://example.org',
});
const doc = app.swagger();
writeFileSync(join(import.meta.dirname, '../docs/openapi.json'), JSON.stringify(doc, null, 2) + '\n');
await app.close();
store.close();
rmSync(dir, { recursive: true, force: true });
