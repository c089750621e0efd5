# NixOS module for handoff: services.handoff.*. The units it declares are
# the ones in systemd/ (handoff.socket, handoff-admin.socket,
# handoff.service, handoff@.service, handoff-admin@.socket,
# handoff-workers.target), rendered from the same keys; `make package-test`
# compares them key by key (packaging/test/nix-units.py).
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkEnableOption mkIf types;
  cfg = config.services.handoff;
  yaml = pkgs.formats.yaml { };

  configFile = yaml.generate "handoff.yaml" cfg.settings;
  exe = "${cfg.package}/bin/handoff";

  unitConfig = {
    Documentation = "https://github.com/handoff-proxy/handoff";
    # systemd.unit(5): the default 5 starts in 10s would fail the socket
    # units with the service; see systemd/handoff.service.
    StartLimitIntervalSec = "10s";
    StartLimitBurst = 30;
  };

  # [Service] of systemd/handoff.service and handoff@.service, identical
  # in both (systemd/units_test.go checks the same for the unit files).
  serviceConfig = {
    Type = "notify";
    # MAINPID= from the upgraded binary, a child of the old main process.
    NotifyAccess = "all";
    ExecStart = "${exe} serve --config /etc/handoff/handoff.yaml";
    TimeoutStopSec = "45s";
    WatchdogSec = "10s";
    Restart = "on-failure";
    FileDescriptorStoreMax = 64;
    LimitNOFILE = 65536;
    User = "handoff";
    Group = "handoff";
    StateDirectory = "handoff";
    ConfigurationDirectory = "handoff";
    UMask = "0077";
    NoNewPrivileges = true;
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    PrivateUsers = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    RemoveIPC = true;
    PrivateMounts = true;
    KeyringMode = "private";
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
    SystemCallErrorNumber = "EPERM";
  };

  socketConfig = name: listen: {
    ListenStream = listen;
    FileDescriptorName = name;
    Service = "handoff.service";
    Backlog = 4096;
    NoDelay = true;
  };

  workerNames = lib.genList (i: "handoff@${toString (i + 1)}.service") cfg.workers;
in
{
  options.services.handoff = {
    enable = mkEnableOption "handoff, the reverse proxy and load balancer native to systemd";

    package = mkOption {
      type = types.package;
      default = pkgs.handoff;
      description = "The handoff package (the flake's overlay provides pkgs.handoff).";
    };

    settings = mkOption {
      type = yaml.type;
      default = { };
      description = ''
        Configuration written to /etc/handoff/handoff.yaml (schema:
        pkg/config/types.go of handoff; `handoff check` validates it).
        Listener names match the sockets: "http" (listen.http) and
        "admin" (listen.admin). `systemctl reload handoff` applies
        changes to routes and upstreams without dropping a connection.
      '';
    };

    listen = {
      http = mkOption {
        type = types.listOf types.str;
        default = [ "80" ];
        description = "ListenStream= of handoff.socket (fd name http).";
      };
      admin = mkOption {
        type = types.str;
        default = "127.0.0.1:9901";
        description = "ListenStream= of handoff-admin.socket (fd name admin), single-process mode.";
      };
    };

    workers = mkOption {
      type = types.ints.unsigned;
      default = 0;
      description = ''
        0 runs one handoff.service. N > 0 runs handoff@1..N on the same
        sockets instead (handoff-workers.target; one shared accept queue,
        restart them one at a time without losing a request), each with its
        admin API on /run/handoff-admin/N.sock.
      '';
    };

    redis = {
      createLocally = mkOption {
        type = types.bool;
        default = false;
        description = "Run a local Redis (services.redis.servers.handoff) on a Unix socket for handoff's shared state and cache.";
      };
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "redis://10.0.0.7:6379/0";
        description = ''
          Redis for shared state and cache, written to settings.state.redis.url
          (redis://, rediss:// or unix://). null with createLocally uses the
          local server's socket.
        '';
      };
    };
  };

  config = mkIf cfg.enable {
    environment.etc."handoff/handoff.yaml".source = configFile;
    environment.systemPackages = [ cfg.package ];

    services.handoff.settings = lib.mkMerge [
      { listeners = lib.mkDefault [ { name = "http"; protocol = "http"; } ]; }
      (mkIf (cfg.redis.createLocally || cfg.redis.url != null) {
        state.redis.url = if cfg.redis.url != null then cfg.redis.url
          else "unix://${config.services.redis.servers.handoff.unixSocket}";
      })
    ];

    services.redis.servers.handoff = mkIf cfg.redis.createLocally {
      enable = true;
      port = 0;
      user = "handoff";
    };

    users.users.handoff = {
      isSystemUser = true;
      group = "handoff";
      home = "/var/lib/handoff";
      description = "handoff reverse proxy";
    };
    users.groups.handoff = { };

    systemd.sockets = {
      handoff = {
        description = "handoff reverse proxy, HTTP socket";
        wantedBy = [ "sockets.target" ];
        inherit unitConfig;
        socketConfig = socketConfig "http" cfg.listen.http;
      };
    } // lib.optionalAttrs (cfg.workers == 0) {
      handoff-admin = {
        description = "handoff reverse proxy, admin socket";
        wantedBy = [ "sockets.target" ];
        socketConfig = {
          ListenStream = cfg.listen.admin;
          FileDescriptorName = "admin";
          Service = "handoff.service";
        };
      };
    } // lib.listToAttrs (lib.genList (i: let n = toString (i + 1); in lib.nameValuePair "handoff-admin@${n}" {
      description = "handoff reverse proxy, admin socket of worker ${n}";
      socketConfig = {
        ListenStream = "/run/handoff-admin/${n}.sock";
        SocketUser = "handoff";
        SocketGroup = "handoff";
        SocketMode = "0600";
        DirectoryMode = "0755";
        FileDescriptorName = "admin";
        Service = "handoff@${n}.service";
      };
    }) cfg.workers);

    systemd.services = if cfg.workers == 0 then {
      handoff = {
        description = "handoff reverse proxy and load balancer";
        after = [ "network.target" ];
        restartTriggers = [ configFile ];
        reloadIfChanged = true;
        inherit unitConfig;
        serviceConfig = serviceConfig // {
          Sockets = [ "handoff.socket" "handoff-admin.socket" ];
          ExecReload = "${exe} reload --config /etc/handoff/handoff.yaml $MAINPID";
          RuntimeDirectory = "handoff";
        };
      };
    } else lib.listToAttrs (lib.genList (i: let n = toString (i + 1); in lib.nameValuePair "handoff@${n}" {
      description = "handoff reverse proxy and load balancer, worker ${n}";
      after = [ "network.target" ];
      partOf = [ "handoff-workers.target" ];
      wantedBy = [ "handoff-workers.target" ];
      reloadIfChanged = true;
      inherit unitConfig;
      serviceConfig = serviceConfig // {
        Sockets = [ "handoff.socket" "handoff-admin@${n}.socket" ];
        ExecReload = "${exe} reload --admin unix:/run/handoff-admin/${n}.sock $MAINPID";
        RuntimeDirectory = "handoff/${n}";
      };
    }) cfg.workers);

    systemd.targets = mkIf (cfg.workers > 0) {
      handoff-workers = {
        description = "handoff reverse proxy, worker pool";
        wants = workerNames;
        wantedBy = [ "multi-user.target" ];
      };
    };
  };
}
