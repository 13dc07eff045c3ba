/**
 * `bindle login`: the OAuth 2.0 device flow (RFC 8628) against the server's OIDC provider. Asks
 * the server's `/login` for a device code, shows the verification URL and user code, polls the
 * provider's token endpoint until the login is approved, and stores the tokens in the token
 * file (mode 0600) that later commands send and refresh (stored-login.ts).
 */
import type { Command } from 'commander';
import { isBindleError } from '../../../core/errors/bindle-error.js';
import type { CliContext } from '../cli-context.js';
import { attempt } from '../cli-error.js';
import { action, type ContextProvider } from '../command-kit.js';
import { writeStoredLogin } from '../stored-login.js';

interface LoginOptions {
  provider: string;
}

function loginHint(err: unknown): string | undefined {
  if (isBindleError(err, 'not_found') || isBindleError(err, 'method_not_allowed')) {
    return 'the server offers no login: it is not configured with OIDC, or --server is not its API URL';
  }
  return undefined;
}

async function login(ctx: CliContext, opts: LoginOptions): Promise<void> {
  const server = ctx.settings.serverUrl;
  const client = await ctx.anonymousClient();
  const auth = await attempt(`could not start a login at ${server}`, () => client.startLogin(opts.provider), loginHint);
  ctx.print(`Open ${auth.verificationUri} in a browser and enter the code ${auth.userCode}`);
  if (auth.verificationUriComplete !== undefined) ctx.print(`(or open ${auth.verificationUriComplete})`);
  ctx.print(`Waiting for the login to be approved (the code expires in ${Math.ceil(auth.expiresInSec / 60)} min)...`);
  const { pollForTokens } = await import('../../lib/device-flow.js');
  const tokens = await attempt('login failed', () =>
    pollForTokens(auth, {
      ...(ctx.settings.timeoutMs !== undefined ? { timeoutMs: ctx.settings.timeoutMs } : {}),
      onWait: (seconds, reason) => {
        if (reason === 'slow_down') ctx.print(`The provider asked to poll less often: every ${seconds} s now`);
      },
    }),
  );
  const path = ctx.settings.tokenFile.path;
  await attempt(`could not store the login token in ${path}`, () => writeStoredLogin(path, { ...tokens, clientId: auth.clientId, tokenUrl: auth.tokenUrl }));
  ctx.print(`Logged in. The token is stored in ${path}`);
}

export function registerLoginCommand(program: Command, contextOf: ContextProvider): void {
  program
    .command('login')
    .description(
      "Log in to the server's OIDC provider with the device flow: open the URL shown, enter the code, and the token is stored in the token file (mode 0600; -t/--token-file, default $XDG_CONFIG_HOME/bindle/.token). Later commands send it and refresh it when it expires.",
    )
    .option('--provider <name>', 'the login provider to ask the server for', 'oidc')
    .action(action(contextOf, login));
}
