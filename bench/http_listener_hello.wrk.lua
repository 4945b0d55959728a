-- wrk script of the http_listener_hello case: a call of hello:hi() through luact's http:// listener.
wrk.method = "POST"
wrk.path = "/hello/hi"
wrk.body = "[]"
wrk.headers["Content-Type"] = "application/json"
