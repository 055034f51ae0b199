defmodule HelloDep.Application do
  @moduledoc "Starts a store, so that starting the application is visible."
  use Application

  @impl true
  def start(_type, _args) do
    Supervisor.start_link([{Agent, fn -> %{started: System.monotonic_time()} end}],
      strategy: :one_for_one, name: HelloDep.Supervisor)
  end
end
