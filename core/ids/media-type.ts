/**
 * Media types as labels carry them (RFC 6838 §4.2 `type/subtype` restricted names, RFC 9110
 * §5.6.6 parameters): what a parcel's Content-Type is built from, so it must be a valid header
 * value. Printable ASCII only; no CR, LF, NUL or other controls.
 */

const RESTRICTED_NAME = "[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}";
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED_STRING = '"(?:[\\t\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\t\\x20-\\x7e])*"';
const MEDIA_TYPE = new RegExp(
  `^${RESTRICTED_NAME}/${RESTRICTED_NAME}(?:[\\t ]*;[\\t ]*(?:${TOKEN}=(?:${TOKEN}|${QUOTED_STRING}))?)*$`,
);

/** What a valid media type looks like, for error messages. */
export const MEDIA_TYPE_RULE =
  'an RFC 6838 media type: type/subtype (letters, digits and !#$&^_.+-) with optional ";name=value" parameters, printable ASCII only';

/** True when `value` is `type/subtype` with optional parameters, e.g. `text/plain; charset=utf-8`. */
export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/** The essence (`type/subtype`, lowercase) of a valid media type. */
export function mediaTypeEssence(value: string): string {
  return (value.split(';')[0] ?? '').trim().toLowerCase();
}
