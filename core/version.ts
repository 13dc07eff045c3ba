/** The product version, from package.json (one source of truth for server, CLI and kubelet). */
import pkg from '../package.json' with { type: 'json' };

export const VERSION: string = pkg.version;
