import Config

port =
  System.get_env("NOMAD_PORT_http") || System.get_env("PORT") || "4000"

config :hello_ex, port: String.to_integer(port)

# Read only at runtime: a hot upgrade must keep it (see the driver's
# runtime-config merge).
config :hello_ex, greeting: System.get_env("HELLO_GREETING", "hello")
