// The deployment files as an operator gets them: systemd units hardened (`systemd-analyze
// security` below 4.0), the Kubernetes manifest's pods locked down (non-root, read-only root,
// no privilege escalation, requests and limits, probes, pinned tags, a ReadOnlyMany model
// claim), the Helm chart's values valid against its schema (and `helm lint` / `helm template`
// where helm is installed).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>

#include "common/cluster_config.h"
#include "run_command.h"
#include "yaml-cpp/yaml.h"

namespace lp {
namespace {

namespace fs = std::filesystem;

fs::path Deploy() { return fs::path(LP_FIXTURES) / ".." / ".." / "deploy"; }

bool OnPath(const std::string& program) {
  return lp::testing::RunCommand("command -v " + program).exit_code == 0;
}

TEST(Deploy, SystemdUnitsAreHardened) {
  if (!OnPath("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  int units = 0;
  for (const auto& e : fs::directory_iterator(Deploy() / "systemd")) {
    if (e.path().extension() != ".service") continue;
    ++units;
    auto r = lp::testing::RunCommand("systemd-analyze security --offline=yes --no-pager " +
                                     e.path().string());
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("Overall exposure level for .*: ([0-9.]+)")))
        << r.out;
    EXPECT_LT(std::stod(m[1]), 4.0) << e.path() << "\n" << r.out;
  }
  EXPECT_EQ(units, 2);
}

TEST(Deploy, KubernetesPodsAreLockedDown) {
  const auto docs = YAML::LoadAllFromFile((Deploy() / "k8s" / "layerpipe.yaml").string());
  int pods = 0;
  bool claim = false;
  for (const auto& d : docs) {
    const std::string kind = d["kind"].as<std::string>();
    if (kind == "PersistentVolumeClaim") {
      claim = d["spec"]["accessModes"][0].as<std::string>() == "ReadOnlyMany";
    }
    if (kind == "ConfigMap") {  // the cluster file it carries parses
      auto c = ParseClusterConfig(d["data"]["cluster.yaml"].as<std::string>(), "/");
      EXPECT_TRUE(c.ok()) << c.status();
    }
    if (kind != "StatefulSet" && kind != "Deployment") continue;
    ++pods;
    const auto spec = d["spec"]["template"]["spec"];
    EXPECT_TRUE(spec["securityContext"]["runAsNonRoot"].as<bool>()) << kind;
    // Room for the drain on SIGTERM: a worker's step and exit (10 s at most), the
    // coordinator's --drain-timeout (30 s).
    ASSERT_TRUE(spec["terminationGracePeriodSeconds"].IsDefined()) << kind;
    EXPECT_GT(spec["terminationGracePeriodSeconds"].as<int>(), kind == "Deployment" ? 30 : 10);
    for (const auto& c : spec["containers"]) {
      const std::string name = c["name"].as<std::string>();
      EXPECT_FALSE(c["securityContext"]["allowPrivilegeEscalation"].as<bool>()) << name;
      EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"].as<bool>()) << name;
      EXPECT_EQ(c["securityContext"]["capabilities"]["drop"][0].as<std::string>(), "ALL") << name;
      EXPECT_TRUE(c["resources"]["requests"]["memory"].IsDefined()) << name;
      EXPECT_TRUE(c["resources"]["limits"]["memory"].IsDefined()) << name;
      EXPECT_TRUE(c["livenessProbe"].IsDefined()) << name;
      EXPECT_TRUE(c["readinessProbe"].IsDefined()) << name;
      const std::string image = c["image"].as<std::string>();
      EXPECT_TRUE(image.find(':') != std::string::npos &&
                  image.find(":latest") == std::string::npos)
          << name << ": " << image;
    }
  }
  EXPECT_EQ(pods, 2);
  EXPECT_TRUE(claim) << "a ReadOnlyMany claim for the model";
}

TEST(Deploy, KubernetesExposesTheHttpApiAndItsMetrics) {
  const auto docs = YAML::LoadAllFromFile((Deploy() / "k8s" / "layerpipe.yaml").string());
  std::string http_listen;
  bool service_port = false, container_port = false, scraped = false;
  for (const auto& d : docs) {
    const std::string kind = d["kind"].as<std::string>();
    if (kind == "ConfigMap") {
      auto c = ParseClusterConfig(d["data"]["cluster.yaml"].as<std::string>(), "/");
      ASSERT_TRUE(c.ok()) << c.status();
      http_listen = c->http_listen;
    }
    if (kind == "Service" && d["metadata"]["name"].as<std::string>() == "layerpipe") {
      for (const auto& p : d["spec"]["ports"]) service_port |= p["port"].as<int>() == 8000;
    }
    if (kind == "Deployment") {
      const auto meta = d["spec"]["template"]["metadata"];
      scraped = meta["annotations"]["prometheus.io/scrape"].as<std::string>() == "true" &&
                meta["annotations"]["prometheus.io/port"].as<std::string>() == "8000";
      for (const auto& p : d["spec"]["template"]["spec"]["containers"][0]["ports"]) {
        container_port |= p["containerPort"].as<int>() == 8000;
      }
    }
  }
  EXPECT_EQ(http_listen, "0.0.0.0:8000");
  EXPECT_TRUE(service_port && container_port && scraped);
}

TEST(Deploy, HelmChartValuesMatchTheSchema) {
  const fs::path chart = Deploy() / "helm" / "layerpipe";
  // python3 with yaml and jsonschema (Debian: python3-yaml, python3-jsonschema; setup.sh).
  const std::string check =
      "/usr/bin/python3 -c 'import sys, json, yaml, jsonschema; "
      "jsonschema.validate(yaml.safe_load(open(sys.argv[1])), json.load(open(sys.argv[2])))' ";
  auto good = lp::testing::RunCommand(check + (chart / "values.yaml").string() + " " +
                                      (chart / "values.schema.json").string());
  EXPECT_EQ(good.exit_code, 0) << good.out;
  // The schema does refuse: a floating tag, an unknown key.
  const fs::path bad =
      fs::path(::testing::TempDir()) / ("lp_helm_" + std::to_string(getpid()) + ".yaml");
  for (const std::string& edit : {"s/tag: \"0.6.0\"/tag: latest/", "s/^deviceMap:/deviceMapp:/"}) {
    lp::testing::RunCommand("sed '" + edit + "' " + (chart / "values.yaml").string() + " > " +
                            bad.string());
    auto r = lp::testing::RunCommand(check + bad.string() + " " +
                                     (chart / "values.schema.json").string());
    EXPECT_NE(r.exit_code, 0) << edit << ": " << r.out;
  }
  fs::remove(bad);
  if (OnPath("helm")) {
    auto lint = lp::testing::RunCommand("helm lint " + chart.string());
    EXPECT_EQ(lint.exit_code, 0) << lint.out;
    auto tmpl = lp::testing::RunCommand("helm template t " + chart.string());
    EXPECT_EQ(tmpl.exit_code, 0) << tmpl.out;
  }
}

}  // namespace
}  // namespace lp
