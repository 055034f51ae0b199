%% Only in 0.1.0: 0.2.0 drops this module, and its hot upgrade deletes it.
-module(hello_erl_legacy).
-export([initial/0]).

initial() -> {count, 0}.
