# Added in 0.2.0: the counter's new state, built here, so that the
# counter's code_change depends on a module its hot upgrade adds.
if Version.compare(Mix.Project.config()[:version], "0.2.0") != :lt do
  defmodule HelloEx.Shape do
    @moduledoc false
    def new(count, upgraded), do: %{count: count, upgraded: upgraded}
  end
end
