{
  description = "handoff: a reverse proxy and load balancer native to systemd";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system:
        f (import nixpkgs { inherit system; overlays = [ self.overlays.default ]; }));
    in
    {
      overlays.default = final: prev: {
        handoff = final.callPackage ./nix/package.nix { };
      };

      packages = forAllSystems (pkgs: {
        handoff = pkgs.handoff;
        default = pkgs.handoff;
      });

      # services.handoff.*; pkgs.handoff comes from the overlay.
      nixosModules.default = { ... }: {
        imports = [ ./nix/module.nix ];
        nixpkgs.overlays = [ self.overlays.default ];
      };

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.go pkgs.gopls pkgs.nfpm pkgs.redis pkgs.podman ];
        };
      });

      # `make package-test` runs these against nix/stub-nixpkgs
      # (evaluation only); with real nixpkgs they also build.
      checks = forAllSystems (pkgs:
        let
          single = import ./nix/tests/units.nix { inherit pkgs; };
          workers = import ./nix/tests/units.nix { inherit pkgs; workers = 3; };
        in
        assert single.services ? handoff && single.sockets ? handoff && single.sockets ? handoff-admin;
        assert workers.services ? "handoff@3" && workers.targets ? handoff-workers && !(workers.services ? handoff);
        {
          package = pkgs.handoff;
          module-units = pkgs.writeText "handoff-module-units.json"
            (builtins.toJSON { inherit single workers; });
        });
    };
}
