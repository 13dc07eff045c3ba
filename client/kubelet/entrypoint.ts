/**
 * Which selected parcel a container runs: its entry module. The candidates are the selected
 * parcels whose media type is `application/wasm`. In order:
 * 1. A name given by the container (`command[0]`, or the `bindle.dev/module` annotation) picks
 *    the selected wasm parcel with that label name (or sha256).
 * 2. Otherwise a parcel marked as the entry point wins: `[parcel.label.feature.wasm]` with
 *    `type = "entrypoint"` or `entrypoint = "true"`. Two marked parcels are ambiguous.
 * 3. Otherwise the one wasm parcel that is not a library (`feature.wasm.library = "true"`,
 *    `type = "library"` or `entrypoint = "false"`, as in the reference's webassembly.md).
 * Boolean feature values are `true`/`t`/`false`/`f`, as webassembly.md defines them.
 */
import type { Invoice, Parcel } from '../../schema/index.js';
import { BindleError } from '../../core/errors/bindle-error.js';

/** The media type of a runnable module. */
export const WASM_MEDIA_TYPE = 'application/wasm';

/** True when the parcel's media type is `application/wasm` (parameters and case ignored). */
export function isWasmParcel(parcel: Parcel): boolean {
  const base = parcel.label.mediaType.split(';')[0] ?? '';
  return base.trim().toLowerCase() === WASM_MEDIA_TYPE;
}

function wasmFeature(parcel: Parcel, name: string): string | undefined {
  const section = parcel.label.feature?.wasm;
  if (section === undefined || !Object.hasOwn(section, name)) return undefined;
  return section[name]?.trim().toLowerCase();
}

function isTrue(value: string | undefined): boolean {
  return value === 'true' || value === 't';
}

function isFalse(value: string | undefined): boolean {
  return value === 'false' || value === 'f';
}

/** Marked as the entry point: `wasm.type = "entrypoint"` or `wasm.entrypoint = "true"`. */
export function isMarkedEntrypoint(parcel: Parcel): boolean {
  return wasmFeature(parcel, 'type') === 'entrypoint' || isTrue(wasmFeature(parcel, 'entrypoint'));
}

/** Marked as a library: `wasm.library = "true"`, `wasm.type = "library"` or `wasm.entrypoint = "false"`. */
export function isLibrary(parcel: Parcel): boolean {
  return isTrue(wasmFeature(parcel, 'library')) || wasmFeature(parcel, 'type') === 'library' || isFalse(wasmFeature(parcel, 'entrypoint'));
}

function names(parcels: readonly Parcel[]): string {
  return parcels.map((p) => JSON.stringify(p.label.name)).join(', ');
}

const HOW_TO_CHOOSE =
  'mark one with [parcel.label.feature.wasm] type = "entrypoint", or name it in the container\'s command[0] or the bindle.dev/module annotation';

/**
 * Picks the entry module among `selected` (see the module comment). `requested` is a label name
 * or sha256 the container asked for. Throws `bad_request` naming the bindle and the parcels:
 * no wasm parcel selected, the requested one not selected or not wasm, or an ambiguous choice.
 */
export function chooseEntry(invoice: Invoice, selected: readonly Parcel[], requested?: string): Parcel {
  const bindle = `${invoice.bindle.name}/${invoice.bindle.version}`;
  const wasm = selected.filter(isWasmParcel);
  if (requested !== undefined) {
    const match = (p: Parcel): boolean => p.label.name === requested || p.label.sha256 === requested.toLowerCase();
    const chosen = selected.find(match);
    if (chosen === undefined) {
      const onInvoice = (invoice.parcel ?? []).some(match);
      throw new BindleError(
        'bad_request',
        onInvoice
          ? `bindle ${bindle}: the requested module "${requested}" is on the invoice but not among the selected parcels (check the groups and feature filters)`
          : `bindle ${bindle} has no parcel named "${requested}" (selected parcels: ${names(selected) || 'none'})`,
      );
    }
    if (!isWasmParcel(chosen)) {
      throw new BindleError(
        'bad_request',
        `bindle ${bindle}: the requested module "${requested}" has media type ${chosen.label.mediaType}, not ${WASM_MEDIA_TYPE}`,
      );
    }
    return chosen;
  }
  if (wasm.length === 0) {
    const listed = selected.map((p) => `"${p.label.name}" (${p.label.mediaType})`).join(', ');
    throw new BindleError(
      'bad_request',
      `bindle ${bindle} has no ${WASM_MEDIA_TYPE} parcel among the selected parcels (${listed || 'none'}): there is no module to run`,
    );
  }
  const marked = wasm.filter(isMarkedEntrypoint);
  if (marked.length > 1) {
    throw new BindleError('bad_request', `bindle ${bindle} marks several entry modules (${names(marked)}): name one in the container's command[0] or the bindle.dev/module annotation`);
  }
  const [only] = marked;
  if (only !== undefined) return only;
  const runnable = wasm.filter((p) => !isLibrary(p));
  if (runnable.length === 0) {
    throw new BindleError('bad_request', `bindle ${bindle}: every selected wasm parcel (${names(wasm)}) is a library; there is no entry module to run`);
  }
  const [first, ...others] = runnable;
  if (first === undefined || others.length > 0) {
    throw new BindleError('bad_request', `bindle ${bindle} has several possible entry modules (${names(runnable)}): ${HOW_TO_CHOOSE}`);
  }
  return first;
}
