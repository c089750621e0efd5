# Applies nix/module.nix by hand (no NixOS module system needed, so it
# runs against nix/stub-nixpkgs as well as nixpkgs) and returns the
# systemd units it declares, for flake.nix's checks and for
# packaging/test/nix-units.py, which compares them with systemd/.
{ pkgs, workers ? 0 }:
let
  inherit (pkgs) lib;
  module = import ../module.nix;
  # Resolve mkIf/mkMerge/mkDefault the way the module system would for
  # these simple uses.
  resolve = v:
    if builtins.isAttrs v && v ? _type then
      (if v._type == "if" then (if v.condition then resolve v.content else { })
       else if v._type == "merge" then builtins.foldl' (a: b: a // resolve b) { } v.contents
       else if v._type == "override" then resolve v.content
       else v)
    else if builtins.isAttrs v && !(v ? outPath) then builtins.mapAttrs (_: resolve) v
    else v;
  cfg = {
    enable = true;
    package = pkgs.handoff;
    settings = { };
    listen = { http = [ "80" ]; admin = "127.0.0.1:9901"; };
    inherit workers;
    redis = { createLocally = false; url = null; };
  };
  evaluated = module {
    inherit lib pkgs;
    config = { services.handoff = cfg; services.redis.servers.handoff.unixSocket = "/run/redis-handoff/redis.sock"; };
  };
  config = resolve evaluated.config;
  units = kind: builtins.mapAttrs (_: u: {
    unitConfig = u.unitConfig or { };
    serviceConfig = u.serviceConfig or { };
    socketConfig = u.socketConfig or { };
    after = u.after or [ ]; partOf = u.partOf or [ ]; wantedBy = u.wantedBy or [ ]; wants = u.wants or [ ];
  }) (config.systemd.${kind} or { });
in
{
  options = builtins.attrNames evaluated.options.services.handoff;
  package = "${pkgs.handoff}";
  sockets = units "sockets";
  services = units "services";
  targets = units "targets";
  users = builtins.attrNames config.users.users;
}
