/**
 * Opens the storage backends a config names: the one place that maps an IndexSpec to an
 * InvoiceIndex and a ParcelsSpec to a ParcelStore. The server runtime and `bindle-server migrate`
 * open storage only through here. The PostgreSQL and S3 backends (and their client libraries)
 * are imported only when configured.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { BindleError } from '../../core/errors/bindle-error.js';
import { describeIndex, describeParcels, type IndexSpec, type ParcelsSpec } from '../config/backend-specs.js';
import { FileParcelStore, PARCEL_DIRECTORY } from './file-parcel-store.js';
import type { InvoiceIndex } from './invoice-index.js';
import type { ParcelStore, StagingOptions } from './parcel-store.js';
import { SqliteInvoiceIndex } from './sqlite-invoice-index.js';

export type { IndexSpec, ParcelsSpec } from '../config/backend-specs.js';
export { describeIndex, describeParcels, parseIndexSpec, parseParcelsSpec } from '../config/backend-specs.js';

/** How to open a backend. */
export interface OpenOptions {
  /**
   * Refuse (invalid_config) to open a local backend that does not exist yet instead of creating
   * it empty: for sources that are read from, where a typo must not look like "no data".
   */
  readonly mustExist?: boolean;
  /** How the parcel store removes abandoned uploads (see StagingOptions). */
  readonly staging?: StagingOptions;
  /**
   * Match a SQLite index's `/_q` queries on worker threads (SqliteInvoiceIndexOptions.queryWorkers):
   * for a server, whose event loop must not wait for a query. PostgreSQL runs queries in its own processes.
   */
  readonly queryWorkers?: boolean;
  /**
   * Where an S3 parcel store spools the parts of multipart uploads past its memory cap
   * (PartSpool); the system's temp directory when absent.
   */
  readonly partSpoolDirectory?: string;
}

/** True when invoices in this index are shared by several server processes (replicas). */
export function isSharedIndex(spec: IndexSpec): boolean {
  return spec.kind !== 'sqlite';
}

function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

/** Opens (creating if needed, unless `mustExist`) the invoice index `spec` names. */
export async function openInvoiceIndex(spec: IndexSpec, opts: OpenOptions = {}): Promise<InvoiceIndex> {
  switch (spec.kind) {
    case 'sqlite':
      if (opts.mustExist === true && !(await exists(spec.path))) {
        throw new BindleError('invalid_config', `index ${describeIndex(spec)} does not exist`);
      }
      return SqliteInvoiceIndex.open(spec.path, { queryWorkers: opts.queryWorkers === true });
    case 'postgres': {
      const { PostgresInvoiceIndex } = await import('./postgres-invoice-index.js');
      return PostgresInvoiceIndex.open(spec.url);
    }
  }
}

/** Opens (creating if needed, unless `mustExist`) the parcel store `spec` names. */
export async function openParcelStore(spec: ParcelsSpec, opts: OpenOptions = {}): Promise<ParcelStore> {
  switch (spec.kind) {
    case 'file':
      if (opts.mustExist === true && !(await exists(join(spec.directory, PARCEL_DIRECTORY)))) {
        throw new BindleError('invalid_config', `parcel store ${describeParcels(spec)} has no ${PARCEL_DIRECTORY} directory`);
      }
      return FileParcelStore.open(spec.directory, opts.staging);
    case 's3': {
      const [{ S3ParcelStore }, spools] = await Promise.all([import('./s3-parcel-store.js'), import('./part-spool.js')]);
      const partMemory = spec.partMemoryBytes ?? spools.PART_MEMORY_CAP_BYTES;
      // A store given neither shares the process's spool (processPartSpool).
      const partSpool = opts.partSpoolDirectory === undefined && spec.partMemoryBytes === undefined
        ? undefined
        : new spools.PartSpool(opts.partSpoolDirectory, partMemory);
      return S3ParcelStore.open({
        bucket: spec.bucket,
        prefix: spec.prefix,
        region: spec.region,
        forcePathStyle: spec.forcePathStyle,
        ...opts.staging,
        ...(spec.endpoint !== undefined ? { endpoint: spec.endpoint } : {}),
        ...(spec.requestDeadlineMs !== undefined ? { timeouts: { deadlineMs: spec.requestDeadlineMs } } : {}),
        ...(partSpool === undefined ? {} : { partSpool }),
      });
    }
  }
}
