/**
 * Where the CLI keeps its files when no flag or variable says otherwise, following the
 * platform conventions the reference CLI uses (the `dirs` crate): the cache, config and data
 * directories, then `bindle/` inside them.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** The per-user base directories (before `bindle/` is appended). */
export interface BaseDirectories {
  /** Linux: $XDG_CACHE_HOME or ~/.cache; macOS: ~/Library/Caches; Windows: %LOCALAPPDATA%. */
  readonly cache: string;
  /** Linux: $XDG_CONFIG_HOME or ~/.config; macOS: ~/Library/Application Support; Windows: %APPDATA%. */
  readonly config: string;
  /** Linux: $XDG_DATA_HOME or ~/.local/share; macOS: ~/Library/Application Support; Windows: %APPDATA%. */
  readonly data: string;
}

/** The default locations of the CLI's own files. */
export interface DefaultPaths {
  /** The bindle cache (`-d/--bindle-dir`): `<cache>/bindle`. */
  readonly bindleDir: string;
  /** The keyring (`-r/--keyring`): `<config>/bindle/keyring.toml`. */
  readonly keyring: string;
  /** The token file (`--token-file`): `<config>/bindle/.token`. */
  readonly tokenFile: string;
  /** The secret keys (`--secrets-file`): `<data>/bindle/secret_keys.toml`. */
  readonly secretsFile: string;
  /**
   * Where the reference CLI keeps secret keys (`<config>/bindle/secret_keys.toml`); read when
   * `secretsFile` does not exist but this does.
   */
  readonly legacySecretsFile: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** An XDG variable counts only when it holds an absolute path (as the XDG spec and `dirs` say). */
function xdg(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value !== undefined && value !== '' && isAbsolute(value) ? value : fallback;
}

/** The platform's base directories for the user whose home is `home`. */
export function baseDirectories(env: Env, platform: NodeJS.Platform = process.platform, home: string = homedir()): BaseDirectories {
  if (platform === 'darwin') {
    const support = join(home, 'Library', 'Application Support');
    return { cache: join(home, 'Library', 'Caches'), config: support, data: support };
  }
  if (platform === 'win32') {
    const roaming = env.APPDATA ?? join(home, 'AppData', 'Roaming');
    return { cache: env.LOCALAPPDATA ?? join(home, 'AppData', 'Local'), config: roaming, data: roaming };
  }
  return {
    cache: xdg(env, 'XDG_CACHE_HOME', join(home, '.cache')),
    config: xdg(env, 'XDG_CONFIG_HOME', join(home, '.config')),
    data: xdg(env, 'XDG_DATA_HOME', join(home, '.local', 'share')),
  };
}

/** The CLI's default file locations. */
export function defaultPaths(env: Env, platform: NodeJS.Platform = process.platform, home: string = homedir()): DefaultPaths {
  const base = baseDirectories(env, platform, home);
  return {
    bindleDir: join(base.cache, 'bindle'),
    keyring: join(base.config, 'bindle', 'keyring.toml'),
    tokenFile: join(base.config, 'bindle', '.token'),
    secretsFile: join(base.data, 'bindle', 'secret_keys.toml'),
    legacySecretsFile: join(base.config, 'bindle', 'secret_keys.toml'),
  };
}
