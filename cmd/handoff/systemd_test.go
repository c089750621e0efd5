package main

import (
	"slices"
	"testing"
)

func TestUpgradeCount(t *testing.T) {
	tests := []struct {
		name string
		env  string
		want int
	}{
		{name: "unset", env: "", want: 0},
		{name: "set", env: "3", want: 3},
		{name: "garbage", env: "x", want: 0},
		{name: "negative", env: "-1", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := upgradeCount(func(k string) string {
				if k == envUpgrades {
					return tt.env
				}
				return ""
			})
			if got != tt.want {
				t.Fatalf("upgradeCount = %d, want %d", got, tt.want)
			}
		})
	}
	env := withUpgradeCount([]string{"A=1", envUpgrades + "=1", "B=2"}, 2)
	if !slices.Equal(env, []string{"A=1", "B=2", envUpgrades + "=2"}) {
		t.Fatalf("withUpgradeCount = %v", env)
	}
}
