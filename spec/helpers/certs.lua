-- Spec helper: test certificates made with openssl in a fresh temp directory: a CA (ca.pem,
-- ca.key), a server certificate for one IP (server.pem, server.key), a client certificate
-- (client.pem, client.key) and an unrelated CA (other.pem). The commands are the ones documented
-- at the top of src/tls.rs. `certs.node` adds node certificates (both a server and a client).
local certs = {}

-- Makes them for a server at `ip`; returns the directory (remove it with `rm -rf`).
function certs.make(ip)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir) == 0)
  local script = ([[
set -e
cd "$1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj "/CN=luact test CA" -keyout ca.key -out ca.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=@IP@" -keyout server.key -out server.csr
printf 'subjectAltName=IP:@IP@\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 30 -extfile server.ext -out server.pem
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=luact test client" -keyout client.key -out client.csr
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -set_serial 3 -days 30 -extfile client.ext -out client.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj "/CN=other CA" -keyout other.key -out other.pem
]]):gsub("@IP@", ip)
  local f = assert(io.open(dir .. "/make.sh", "w"))
  f:write(script)
  f:close()
  assert(os.execute("sh " .. dir .. "/make.sh " .. dir .. " >/dev/null 2>&1") == 0, "openssl failed")
  return dir
end

-- A node certificate for node links (`luact.start{ tls = ... }`) in `dir` (made by certs.make):
-- NAME.pem and NAME.key, for the IP addresses in `ips` (a list; "DNS:name" entries too), usable as a TLS server and a
-- TLS client, signed by the CA `ca` of that directory ("ca", the default, or "other"). Extra
-- lines of the extension file may be given in `ext` (e.g. "extendedKeyUsage=serverAuth" alone).
function certs.node(dir, name, ips, ca, ext)
  local sans = {}
  for i, ip in ipairs(ips) do sans[i] = ip:find(":") and ip or ("IP:" .. ip) end   -- ("DNS:x" as is)
  ext = ext or "extendedKeyUsage=serverAuth,clientAuth"
  local script = ([[
set -e
cd "$1"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=@NAME@" -keyout @NAME@.key -out @NAME@.csr
printf 'subjectAltName=@SANS@\nbasicConstraints=CA:FALSE\n@EXT@\n' > @NAME@.ext
openssl x509 -req -in @NAME@.csr -CA @CA@.pem -CAkey @CA@.key -set_serial @SERIAL@ -days 30 -extfile @NAME@.ext -out @NAME@.pem
]]):gsub("@NAME@", name):gsub("@SANS@", table.concat(sans, ",")):gsub("@CA@", ca or "ca")
    :gsub("@EXT@", ext):gsub("@SERIAL@", tostring(math.random(100, 1e9)))
  local path = dir .. "/" .. name .. ".sh"
  local f = assert(io.open(path, "w"))
  f:write(script)
  f:close()
  assert(os.execute("sh " .. path .. " " .. dir .. " >/dev/null 2>&1") == 0, "openssl failed")
  return dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".key"
end

return certs
