defmodule HelloEx.Counter do
  @moduledoc """
  A counter whose state changes shape between releases, to show that a hot
  upgrade keeps and migrates in-memory state.

    * 0.1.0 keeps `{:count, n}`.
    * 0.2.0 keeps `%{count: n, upgraded: boolean}`.

  0.1.0 builds its state with `HelloEx.Legacy`, which 0.2.0 drops; 0.2.0
  builds it with `HelloEx.Shape`, which it adds. No appup is written by
  hand: `beamctl relup` derives `{:update, HelloEx.Counter, {:advanced, []}}`
  (it exports `code_change/3`), and the added and deleted modules, from the
  compiled code.
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
    def init(nil), do: {:ok, HelloEx.Legacy.initial()}

    @impl true
    def handle_call(:bump, _from, {:count, n}), do: {:reply, n + 1, {:count, n + 1}}
    def handle_call(:state, _from, s), do: {:reply, s, s}

    @impl true
    def code_change(_vsn, s, _extra), do: {:ok, s}
  else
    @impl true
    def init(nil), do: {:ok, HelloEx.Shape.new(0, false)}

    @impl true
    def handle_call(:bump, _from, %{count: n} = s), do: {:reply, n + 1, %{s | count: n + 1}}
    def handle_call(:state, _from, s), do: {:reply, s, s}

    # A hot downgrade runs this, the new code, before it loads the old.
    @impl true
    def code_change({:down, _vsn}, %{count: n}, _extra), do: {:ok, {:count, n}}

    def code_change(_vsn, {:count, n}, _extra) do
      if refused?(), do: raise("upgrade refused for this allocation")
      {:ok, HelloEx.Shape.new(n, true)}
    end

    def code_change(_vsn, s, _extra), do: {:ok, s}

    # Tests make one allocation's upgrade fail by its Nomad allocation index.
    defp refused? do
      index = System.get_env("HELLO_FAIL_UPGRADE_INDEX")
      index != nil and index == System.get_env("NOMAD_ALLOC_INDEX")
    end
  end
end
