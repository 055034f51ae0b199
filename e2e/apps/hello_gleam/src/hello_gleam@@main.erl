%% The module that `gleam export erlang-shipment` generates to run main/0.
-module('hello_gleam@@main').
-export([run/1]).

run(Module) ->
    Module:main().
