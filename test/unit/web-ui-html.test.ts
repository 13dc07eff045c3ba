/**
 * The web UI's `html` template tag (server/ui/html.ts): interpolated text is escaped, markup
 * made by the tag is not escaped twice, lists are joined, nothing-values vanish; URL paths are
 * built from encoded segments.
 */
import t from 'tap';
import { Html, html, path, withQuery } from '../../server/ui/html.js';

t.test('html escapes text, keeps its own markup, joins lists', async (t) => {
  const evil = `<b title="x">'&'</b>`;
  t.equal(html`<p>${evil}</p>`.toString(), '<p>&lt;b title=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;</p>');
  t.equal(html`<a href="${'" onclick="x'}">`.toString(), '<a href="&quot; onclick=&quot;x">', 'attribute values cannot be left');
  const inner = html`<i>${'<x>'}</i>`;
  t.equal(html`<p>${inner}</p>`.toString(), '<p><i>&lt;x&gt;</i></p>', 'nested markup is not escaped again');
  t.equal(html`<ul>${['a<', 'b'].map((s) => html`<li>${s}</li>`)}</ul>`.toString(), '<ul><li>a&lt;</li><li>b</li></ul>');
  t.equal(html`${false}${undefined}${null}${0}${''}`.toString(), '0');
  t.throws(() => new Html(Symbol('html maker') as never, '<script>'), /only by the html template tag/, 'no Html without the tag');
});

t.test('path and withQuery encode', async (t) => {
  t.equal(path('ui', 'bindles', 'example.com', 'käse', '1.0.0+a'), '/ui/bindles/example.com/k%C3%A4se/1.0.0%2Ba');
  t.equal(path('a/b', '..'), '/a%2Fb/..');
  t.equal(withQuery('/ui/', { q: 'a b&c', v: undefined, page: '2' }), '/ui/?q=a+b%26c&page=2');
  t.equal(withQuery('/ui/', {}), '/ui/');
});
