%% Takes SIGTERM from the VM's signal server in place of OTP's default
%% handler, which would run init:stop at once, and sends it to a process as
%% the message `sigterm`. SIGUSR1 and SIGQUIT keep their default effect.
-module(hello_gleam_sigterm).
-behaviour(gen_event).
-export([forward_to/1]).
-export([init/1, handle_event/2, handle_call/2, handle_info/2]).

%% forward_to(Pid) makes SIGTERM a message to Pid.
forward_to(Pid) ->
    gen_event:swap_handler(erl_signal_server, {erl_signal_handler, []}, {?MODULE, Pid}).

init({Pid, _}) -> {ok, Pid}.

handle_event(sigterm, Pid) ->
    Pid ! sigterm,
    {ok, Pid};
handle_event(sigusr1, Pid) ->
    erlang:halt("Received SIGUSR1"),
    {ok, Pid};
handle_event(sigquit, Pid) ->
    erlang:halt(),
    {ok, Pid};
handle_event(_Signal, Pid) ->
    {ok, Pid}.

handle_call(_Request, Pid) -> {ok, ok, Pid}.
handle_info(_Info, Pid) -> {ok, Pid}.
