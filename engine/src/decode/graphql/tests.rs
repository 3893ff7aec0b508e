use super::*;
use crate::decode::name_words;

#[test]
fn mutation_name_rules() {
    let cases = [
        ("volumeDelete", Action::Delete),
        ("volumeInstanceBackupDelete", Action::Delete),
        ("projectScheduleDeleteForce", Action::Delete),
        ("deploymentRemove", Action::Delete),
        ("sandboxDestroy", Action::Delete),
        ("purgeServiceCache", Action::Delete),
        ("egressGatewayAssociationsClear", Action::Delete),
        ("delete_users", Action::Delete),
        ("URLDelete", Action::Delete),
        ("customDomainCreate", Action::Create),
        ("addMember", Action::Create),
        ("serviceInstanceUpdate", Action::Update),
        ("variableCollectionUpsert", Action::Update),
        ("customDomainIssueCertificate", Action::Execute),
        ("volumeInstanceBackupRestore", Action::Execute),
        ("environmentPatchCommit", Action::Execute),
        ("dropdownSettingsUpdate", Action::Update),
        ("templateDeployV2", Action::Execute),
        // Issue 18, class 2: joined verbs.
        ("orderCreateOrReplace", Action::Delete),
        ("signalReplace", Action::Delete),
        ("environmentApplyChangeSet", Action::Execute),
        ("deploymentCancel", Action::Delete),
        ("userEdit", Action::Update),
        ("orderCreateOrFrobnicate", Action::Execute),
        ("orderGetOrCreate", Action::Create),
        ("orderUpdateAndRemoveItems", Action::Delete),
    ];
    for (name, action) in cases {
        assert_eq!(builtin_action(name), action, "{name}");
    }
    assert_eq!(
        name_words("HTTPServerURLDelete_v2"),
        ["http", "server", "url", "delete", "v"]
    );
}
