defmodule HelloEx.MixProject do
  use Mix.Project

  # build.sh builds 0.1.0, then 0.2.0 with a relup from it, into the same
  # release directory: HELLO_EX_VSN picks the version, and
  # HELLO_EX_UPGRADE_FROM the version the relup starts from.
  @version System.get_env("HELLO_EX_VSN", "0.1.0")

  def project do
    [
      app: :hello_ex,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: [],
      releases: [
        hello_ex: [
          include_erts: true,
          # release_handler lives in sasl; ssl is for TLS distribution.
          applications: [sasl: :permanent, ssl: :permanent],
          steps: [:assemble, &relup/1, :tar]
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

  # mix has no relup step of its own: add the appup to the new version's
  # ebin and let systools write releases/VSN/relup, as rebar3 relup does.
  defp relup(%Mix.Release{} = rel) do
    case System.get_env("HELLO_EX_UPGRADE_FROM") do
      nil ->
        rel

      from ->
        ebin = Path.join([rel.path, "lib", "hello_ex-#{rel.version}", "ebin"])
        File.cp!("rel/hello_ex.appup", Path.join(ebin, "hello_ex.appup"))
        releases = Path.join(rel.path, "releases")
        new = Path.join([releases, rel.version, "hello_ex"])
        old = Path.join([releases, from, "hello_ex"])
        paths = Enum.map(Path.wildcard(Path.join(rel.path, "lib/*/ebin")), &to_charlist/1)

        {:ok, _relup, _mod, _warnings} =
          :systools.make_relup(to_charlist(new), [to_charlist(old)], [to_charlist(old)], [
            {:path, paths},
            {:outdir, to_charlist(Path.join(releases, rel.version))},
            :silent
          ])

        rel
    end
  end
end
