defmodule HelloEx.MixProject do
  use Mix.Project

  # build.sh builds 0.1.0, 0.2.0 and 0.3.0 as plain releases, with no appup
  # and no relup step: HELLO_EX_VSN picks the version, and `beamctl relup`
  # makes the hot-upgrade packages from the tarballs.
  @version System.get_env("HELLO_EX_VSN", "0.1.0")

  def project do
    [
      app: :hello_ex,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: deps(),
      releases: [
        hello_ex: [
          include_erts: true,
          # release_handler lives in sasl; ssl is for TLS distribution.
          applications: [sasl: :permanent, ssl: :permanent],
          steps: [:assemble, :tar]
        ]
      ]
    ]
  end

  def application do
    [
      extra_applications: [:logger],
      mod: {HelloEx.Application, []}
    ]
  end

  # 0.3.0 adds a dependency application, which its hot upgrade starts.
  defp deps do
    if Version.compare(@version, "0.3.0") == :lt, do: [], else: [{:hello_dep, path: "../hello_dep"}]
  end
end
