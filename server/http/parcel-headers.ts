/**
 * The headers a parcel is served with. A registry's parcels are untrusted content on the
 * server's own origin, so every parcel is sent with `X-Content-Type-Options: nosniff` and a
 * sandboxing Content-Security-Policy, and types a browser would run or render actively (HTML,
 * SVG, XML, scripts, ...) as `Content-Disposition: attachment`. A label whose media type is not
 * a valid header value (stored before create checked it) is served as application/octet-stream.
 */
import { isMediaType, mediaTypeEssence } from '../../core/ids/media-type.js';

export const PARCEL_CSP = "sandbox; default-src 'none'";
const FALLBACK_TYPE = 'application/octet-stream';

/** Essences a browser executes or renders with scripts, links or styles. */
const ACTIVE_TYPES: ReadonlySet<string> = new Set([
  'text/html', 'application/xhtml+xml', 'image/svg+xml', 'text/xml', 'application/xml', 'text/xsl', 'application/xslt+xml',
  'text/javascript', 'application/javascript', 'application/x-javascript', 'text/ecmascript', 'application/ecmascript',
  'module/javascript', 'text/css', 'application/pdf', 'application/x-shockwave-flash', 'text/vnd.wap.wml',
  'multipart/x-mixed-replace', 'application/vnd.mozilla.xul+xml', 'text/cache-manifest', 'application/rdf+xml',
]);

/** True when browsers would run or actively render content of this media type. */
export function isActiveMediaType(mediaType: string): boolean {
  const essence = mediaTypeEssence(mediaType);
  return ACTIVE_TYPES.has(essence) || essence.endsWith('+xml') || essence.endsWith('+html');
}

/** Content-Type and the protective headers for a parcel labelled `mediaType`. */
export function parcelHeaders(mediaType: string): Record<string, string> {
  const type = isMediaType(mediaType) ? mediaType : FALLBACK_TYPE;
  return {
    'content-type': type,
    'x-content-type-options': 'nosniff',
    'content-security-policy': PARCEL_CSP,
    ...(isActiveMediaType(type) ? { 'content-disposition': 'attachment' } : {}),
  };
}
