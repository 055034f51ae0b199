# Only in 0.1.0: 0.2.0 drops this module, and its hot upgrade deletes it.
if Version.compare(Mix.Project.config()[:version], "0.2.0") == :lt do
  defmodule HelloEx.Legacy do
    @moduledoc false
    def initial, do: {:count, 0}
  end
end
