defmodule HelloDep.MixProject do
  use Mix.Project

  # A dependency application that hello_ex 0.3.0 adds: its hot upgrade
  # must load and start it (systools' add_application).
  def project do
    [app: :hello_dep, version: "1.0.0", elixir: "~> 1.14", deps: []]
  end

  def application do
    [mod: {HelloDep.Application, []}]
  end
end
