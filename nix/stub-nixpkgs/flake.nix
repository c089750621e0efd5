# Stub nixpkgs for `nix flake check` on machines without network access:
# nix flake check --override-input nixpkgs path:./nix/stub-nixpkgs
{
  outputs = { self }: {
    lib = import ./lib.nix;
  };
}
