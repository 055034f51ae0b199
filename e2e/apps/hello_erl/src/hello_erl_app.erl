%% Example OTP application: a small HTTP service built from OTP alone.
-module(hello_erl_app).
-behaviour(application).
-export([start/2, prep_stop/1, stop/1]).

start(_Type, _Args) ->
    Port = hello_erl_http:port_from_env(),
    {ok, Sup} = hello_erl_sup:start_link(Port),
    io:format("hello_erl ~s booted on node ~s, http port ~b~n",
              [vsn(), node(), Port]),
    {ok, Sup}.

prep_stop(State) ->
    io:format("hello_erl shutting down gracefully~n"),
    State.

stop(_State) ->
    io:format("hello_erl stopped~n"),
    ok.

vsn() ->
    {ok, V} = application:get_key(hello_erl, vsn),
    V.
