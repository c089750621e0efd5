# The few nixpkgs lib functions nix/module.nix, nix/package.nix and
# flake.nix use, with nixpkgs' shapes (mkIf/mkMerge/mkDefault return the
# same tagged attrsets), so that the flake evaluates here, where nixpkgs
# cannot be fetched. Not a NixOS module system: nix/tests/units.nix
# applies the module by hand.
rec {
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption { type = types.bool; default = false; description = "Whether to enable ${name}."; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkDefault = content: { _type = "override"; priority = 1000; inherit content; };
  types =
    let t = name: { _type = "option-type"; inherit name; };
    in {
      bool = t "bool"; str = t "str"; int = t "int"; package = t "package"; anything = t "anything";
      ints = { unsigned = t "unsignedInt"; positive = t "positiveInt"; };
      listOf = _: t "listOf"; attrsOf = _: t "attrsOf"; nullOr = _: t "nullOr";
    };
  genList = builtins.genList;
  listToAttrs = builtins.listToAttrs;
  nameValuePair = name: value: { inherit name value; };
  optionalAttrs = cond: attrs: if cond then attrs else { };
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  cleanSource = src: src;
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
}
