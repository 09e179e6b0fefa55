vcl 4.1;
# Varnish as a video cache: malloc storage (size on the command line), its own request
# coalescing and streaming (both on by default). X-Cache says HIT or MISS like the others.
backend origin {
  .host = "@ORIGIN_HOST@";
  .port = "@ORIGIN_PORT@";
}
sub vcl_deliver {
  if (obj.hits > 0) {
    set resp.http.X-Cache = "HIT";
  } else {
    set resp.http.X-Cache = "MISS";
  }
}
