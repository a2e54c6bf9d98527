// Where Pigeon keeps its data when no --data DIR is given.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** $PIGEON_DATA, else $XDG_DATA_HOME/pigeon, else ~/.local/share/pigeon. */
export function defaultDataDir(): string {
  if (process.env.PIGEON_DATA) return process.env.PIGEON_DATA;
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'pigeon');
}
