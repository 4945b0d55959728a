-- Spec helper: test certificates made with openssl in a fresh temp directory: a CA (ca.pem,
-- ca.key), a server certificate for one IP (server.pem, server.key), a client certificate
-- (client.pem, client.key) and an unrelated CA (other.pem). The commands are the ones documented
-- at the top of src/tls.rs.
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

return certs
