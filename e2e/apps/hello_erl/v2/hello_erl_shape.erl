%% Added in 0.2.0: the counter's new state, built here, so that the
%% counter's code_change depends on a module its hot upgrade adds.
-module(hello_erl_shape).
-export([new/2]).

new(Count, Upgraded) -> #{count => Count, upgraded => Upgraded}.
