/** Parcel selection: which parcels of an invoice to fetch (groups, conditions, features). */
export {
  groupMembers,
  isGlobalParcel,
  parseFeatureFilter,
  selectParcels,
  type FeatureFilter,
  type Selection,
  type SelectionRequest,
} from './parcel-selection.js';
