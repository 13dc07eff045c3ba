/**
 * Which requests the body idle timeout watches: only those whose head frames a body
 * (Content-Length above 0, or Transfer-Encoding); a bodyless GET or HEAD gets no timer.
 */
import t from 'tap';
import { hasBody } from '../../server/http/request-timeouts.js';

t.test('a body is framed only by Content-Length (not 0) or Transfer-Encoding', async (t) => {
  t.notOk(hasBody({}), 'no framing headers: no body (a plain GET or HEAD)');
  t.notOk(hasBody({ 'content-length': '0' }), 'Content-Length: 0');
  t.ok(hasBody({ 'content-length': '1' }), 'Content-Length: 1');
  t.ok(hasBody({ 'transfer-encoding': 'chunked' }), 'chunked');
  t.ok(hasBody({ 'content-length': '0', 'transfer-encoding': 'chunked' }), 'Transfer-Encoding wins');
});
