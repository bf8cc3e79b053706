// CloudFront viewer-request function (cloudfront-js-2.0) in front of the serve origin.
// 1. A visitor who carries the identity cookie must never be answered from the shared cache entry of an
//    anonymous or segment fragment: x-pz-known marks such requests, and the cache policy keys on the mark.
//    Their personal fragments are `Cache-Control: private`, so CloudFront never stores them and always asks
//    serve. The cookie's value is not read here (serve verifies it); only its presence changes the cache key.
// 2. x-pz-ctx is the normalized viewer context, for the dimensions the live rules document reads only (the
//    key value store's "context-dimensions", written when a rules document is published): a fragment a
//    context-scoped rule changed is then never served from cache to a visitor of another context. It is
//    personalization/context.py's context_key, line for line (tests run both on the same headers).
// 3. x-pz-host is the viewer's Host: serve sees its own Function URL host, and the referrer channel needs the
//    shop's to tell its own pages from other sites.
// Every x-pz-* header a viewer sends is replaced here.
import cf from 'cloudfront';

const kvs = cf.kvs();
const DIMENSIONS = ["device", "country", "timezone", "channel"];
const SEARCH = ["google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia", "qwant", "startpage"];
const SOCIAL = ["facebook", "instagram", "twitter", "linkedin", "pinterest", "tiktok", "reddit", "youtube"];
const SOCIAL_HOSTS = ["t.co", "x.com", "www.x.com", "lnkd.in"];
const WEBMAIL = ["mail", "webmail", "outlook"];
const EMAIL_MEDIA = ["email", "e-mail", "newsletter", "mail"];
const SOCIAL_MEDIA = ["social", "social-media", "social_media", "socialmedia"];
const URL_PARTS = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^\/?#@]*@)?([^\/?#:]*)[^?#]*(?:\?([^#]*))?/;
const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]{0,29}(\/[A-Za-z0-9_+-]{1,30}){0,2}$/;

function header(request, name) {
  var found = request.headers[name];
  return found ? found.value : undefined;
}

function device(request) {
  var tablet = header(request, "cloudfront-is-tablet-viewer");
  var mobile = header(request, "cloudfront-is-mobile-viewer");
  if (tablet === undefined && mobile === undefined) return "-";
  if (tablet === "true") return "tablet";
  if (mobile === "true") return "mobile";
  if (header(request, "cloudfront-is-smarttv-viewer") === "true") return "other";
  return "desktop";
}

function country(request) {
  var value = header(request, "cloudfront-viewer-country");
  return value !== undefined && /^[A-Za-z]{2}$/.test(value) ? value.toUpperCase() : "-";
}

function timezone(request) {
  var value = header(request, "cloudfront-viewer-time-zone");
  return value !== undefined && ZONE_NAME.test(value) ? value : "-";
}

function anyIn(labels, names) {
  for (var i = 0; i < labels.length; i++) if (names.indexOf(labels[i]) >= 0) return true;
  return false;
}

function channel(request) {
  var referer = header(request, "referer");
  if (!referer) return "direct";
  var found = URL_PARTS.exec(referer.slice(0, 2048));
  if (found === null) return "direct";
  var host = found[1].toLowerCase();
  var pairs = (found[2] || "").split("&");
  var tagged = false;
  var medium = "";
  for (var i = 0; i < pairs.length; i++) {
    var at = pairs[i].indexOf("=");
    var name = (at < 0 ? pairs[i] : pairs[i].slice(0, at)).toLowerCase();
    if (name.indexOf("utm_") === 0) {
      tagged = true;
      if (name === "utm_medium") medium = at < 0 ? "" : pairs[i].slice(at + 1).toLowerCase();
    }
  }
  if (tagged) {
    if (EMAIL_MEDIA.indexOf(medium) >= 0) return "email";
    if (SOCIAL_MEDIA.indexOf(medium) >= 0) return "social";
    return "campaign";
  }
  var own = (header(request, "host") || "").split(":")[0].toLowerCase();
  if (!host || host === own) return "direct";
  var labels = host.split(".");
  if (anyIn(labels, WEBMAIL)) return "email";
  if (anyIn(labels, SEARCH)) return "search";
  if (anyIn(labels, SOCIAL) || SOCIAL_HOSTS.indexOf(host) >= 0) return "social";
  return "referral";
}

const VALUE_OF = { device: device, country: country, timezone: timezone, channel: channel };

async function liveDimensions() {
  try {
    return (await kvs.get("context-dimensions")).split(",");
  } catch (missing) {
    return []; // nothing published yet: no rule reads a context
  }
}

async function handler(event) {
  var request = event.request;
  var known = request.cookies && request.cookies["pz_id"] ? "1" : "0";
  request.headers["x-pz-known"] = { value: known };
  request.headers["x-pz-host"] = { value: header(request, "host") || "" };
  var used = await liveDimensions();
  var parts = [];
  for (var i = 0; i < DIMENSIONS.length; i++) {
    if (used.indexOf(DIMENSIONS[i]) >= 0) parts.push(DIMENSIONS[i] + "=" + VALUE_OF[DIMENSIONS[i]](request));
  }
  request.headers["x-pz-ctx"] = { value: parts.join(";") };
  return request;
}
