/**
 * S3's XML, both ways. Responses are built as strings (the shapes are few and fixed); request bodies
 * (DeleteObjects, CompleteMultipartUpload, CreateBucket) are read with a small extractor, enough
 * for their flat shapes, that rejects anything malformed instead of guessing.
 */
import { malformedXml } from './errors.js';

const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** Escapes text for element content; control characters become character references (as S3 sends them). */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"'\u0000-\u001f\u007f]/g, (c) => {
    switch (c) {
      case '&': return '&amp;';
      case '<': return '&lt;';
      case '>': return '&gt;';
      case '"': return '&quot;';
      case "'": return '&apos;';
      default: return `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    }
  });
}

/** `<name>value</name>`, or nothing when the value is undefined. */
export function el(name: string, value: string | number | boolean | undefined): string {
  if (value === undefined) return '';
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

/** A whole response document with S3's namespace on the root element. */
export function xmlDocument(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_NS}">${inner}</${root}>`;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function decodeText(raw: string): string {
  // CDATA sections are taken verbatim; everything else has its references resolved.
  return raw.split(/(<!\[CDATA\[[\s\S]*?\]\]>)/).map((part) => {
    if (part.startsWith('<![CDATA[')) return part.slice(9, -3);
    if (part.includes('<')) throw malformedXml();
    return part.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (_m, ref: string | undefined) => {
      if (ref === undefined) throw malformedXml();
      if (ref.startsWith('#')) {
        const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
        if (!(code >= 0 && code <= 0x10ffff)) throw malformedXml();
        return String.fromCodePoint(code);
      }
      const v = ENTITIES[ref];
      if (v === undefined) throw malformedXml();
      return v;
    });
  }).join('');
}

/**
 * The contents of every `<tag>…</tag>` directly in `xml` (not nested in another element of the same
 * name), in order. Namespace prefixes and attributes on the tag are allowed.
 */
export function children(xml: string, tag: string): string[] {
  const re = new RegExp(`<(?:[\\w.-]+:)?${tag}(?:\\s[^>]*?)?(/)?>`, 'g');
  const out: string[] = [];
  let m: RegExpExecArray | null;
  while ((m = re.exec(xml))) {
    if (m[1]) { out.push(''); continue; }
    const close = new RegExp(`</(?:[\\w.-]+:)?${tag}\\s*>`, 'g');
    close.lastIndex = re.lastIndex;
    const c = close.exec(xml);
    if (!c) throw malformedXml();
    out.push(xml.slice(re.lastIndex, c.index));
    re.lastIndex = close.lastIndex;
  }
  return out;
}

/** The decoded text of the one `<tag>` in `xml`, or undefined when there is none. */
export function childText(xml: string, tag: string): string | undefined {
  const found = children(xml, tag);
  if (found.length > 1) throw malformedXml();
  return found[0] === undefined ? undefined : decodeText(found[0]);
}

/** The content of the document's root element, which must be `root`. */
export function rootElement(body: string, root: string): string {
  const text = body.replace(/^\uFEFF/, '').replace(/<\?xml[^>]*\?>/, '').trim();
  const inner = children(text, root);
  if (inner.length !== 1) throw malformedXml();
  return inner[0]!;
}
