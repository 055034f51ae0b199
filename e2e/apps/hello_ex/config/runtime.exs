import Config

port =
  System.get_env("NOMAD_PORT_http") || System.get_env("PORT") || "4000"

config :hello_ex, port: String.to_integer(port)
