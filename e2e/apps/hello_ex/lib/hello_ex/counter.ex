defmodule HelloEx.Counter do
  @moduledoc """
  A counter whose state changes shape between releases, to show that a hot
  upgrade keeps and migrates in-memory state.

    * 0.1.0 keeps `{:count, n}`.
    * 0.2.0 keeps `%{count: n, upgraded: boolean}`.

  `rel/hello_ex.appup` upgrades it with `{:update, HelloEx.Counter, {:advanced, []}}`.
  """
  use GenServer

  @version Mix.Project.config()[:version]

  def start_link(_), do: GenServer.start_link(__MODULE__, nil, name: __MODULE__)

  @doc "Adds one and returns the new count."
  def bump, do: GenServer.call(__MODULE__, :bump)

  @doc "Returns the raw state, to check its shape."
  def state, do: GenServer.call(__MODULE__, :state)

  if Version.compare(@version, "0.2.0") == :lt do
    @impl true
    def init(nil), do: {:ok, {:count, 0}}

    @impl true
    def handle_call(:bump, _from, {:count, n}), do: {:reply, n + 1, {:count, n + 1}}
    def handle_call(:state, _from, s), do: {:reply, s, s}

    @impl true
    def code_change(_vsn, s, _extra), do: {:ok, s}
  else
    @impl true
    def init(nil), do: {:ok, %{count: 0, upgraded: false}}

    @impl true
    def handle_call(:bump, _from, %{count: n} = s), do: {:reply, n + 1, %{s | count: n + 1}}
    def handle_call(:state, _from, s), do: {:reply, s, s}

    # A hot downgrade runs this, the new code, before it loads the old.
    @impl true
    def code_change({:down, _vsn}, %{count: n}, _extra), do: {:ok, {:count, n}}

    def code_change(_vsn, {:count, n}, _extra) do
      if refused?(), do: raise("upgrade refused for this allocation")
      {:ok, %{count: n, upgraded: true}}
    end

    def code_change(_vsn, s, _extra), do: {:ok, s}

    # Tests make one allocation's upgrade fail by its Nomad allocation index.
    defp refused? do
      index = System.get_env("HELLO_FAIL_UPGRADE_INDEX")
      index != nil and index == System.get_env("NOMAD_ALLOC_INDEX")
    end
  end
end
