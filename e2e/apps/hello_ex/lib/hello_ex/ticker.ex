# Added in 0.3.0 as a new child of the supervision tree. A hot upgrade
# does not start new children (beamctl relup warns about it); the next
# restart does.
if Version.compare(Mix.Project.config()[:version], "0.3.0") != :lt do
  defmodule HelloEx.Ticker do
    @moduledoc false
    use GenServer

    def start_link(_), do: GenServer.start_link(__MODULE__, 0, name: __MODULE__)

    @impl true
    def init(n), do: {:ok, n}
  end
end
