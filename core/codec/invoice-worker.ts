/**
 * The invoice worker thread: parses and validates invoice bodies off the main thread (see
 * parseInvoiceOffThread in invoice-codec.ts). Errors are the codec's own BindleErrors.
 */
import { serveJobs } from '../worker-pool.js';
import type { DocumentFormat } from './document-codec.js';
import { parseInvoice } from './invoice-codec.js';

/** One body to parse. */
export interface InvoiceJob {
  readonly text: string;
  readonly format: DocumentFormat;
}

serveJobs((job: InvoiceJob) => parseInvoice(job.text, job.format, 'body'));
