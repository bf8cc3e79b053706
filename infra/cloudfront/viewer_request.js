// CloudFront viewer-request function (cloudfront-js-2.0) in front of the serve origin.
// A visitor who carries the identity cookie must never be answered from the shared cache entry of an
// anonymous or segment fragment: this marks such requests, and the cache policy keys on the mark. Their
// personal fragments are `Cache-Control: private`, so CloudFront never stores them and always asks serve.
// The cookie's value is not read here (serve verifies it); only its presence changes the cache key.
function handler(event) {
  var request = event.request;
  var known = request.cookies && request.cookies["pz_id"] ? "1" : "0";
  request.headers["x-pz-known"] = { value: known };
  return request;
}
