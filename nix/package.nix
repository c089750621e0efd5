# handoff built with buildGoModule. `make nix-vendor-hash` recomputes
# vendorHash (go mod vendor + `nix hash path`) after go.mod changes.
{ lib, buildGoModule, version ? "0.1.0" }:

buildGoModule {
  pname = "handoff";
  inherit version;

  src = lib.cleanSource ./..;
  vendorHash = "sha256-U8iqEbQH/KHoKklw4ka9+/2sDoHO5aw3e7/LJyLiNDY=";

  subPackages = [ "cmd/handoff" ];
  env.CGO_ENABLED = "0";
  ldflags = [ "-s" "-w" "-X main.version=${version}" ];
  # The unit tests start redis-server and systemd-socket-activate; they run
  # in the project's CI, not in the sandbox.
  doCheck = false;

  postInstall = ''
    install -Dm644 -t $out/lib/systemd/system systemd/*.socket systemd/*.service systemd/*.target
    install -Dm644 systemd/sysusers.d/handoff.conf $out/lib/sysusers.d/handoff.conf
    install -Dm644 systemd/handoff.yaml $out/share/handoff/handoff.yaml
    install -Dm644 packaging/handoff.1 $out/share/man/man1/handoff.1
    install -Dm644 packaging/completions/handoff.bash $out/share/bash-completion/completions/handoff
    install -Dm644 packaging/completions/_handoff $out/share/zsh/site-functions/_handoff
    install -Dm644 packaging/completions/handoff.fish $out/share/fish/vendor_completions.d/handoff.fish
  '';

  meta = {
    description = "Reverse proxy and load balancer native to systemd";
    homepage = "https://github.com/handoff-proxy/handoff";
    mainProgram = "handoff";
    platforms = lib.platforms.linux;
  };
}
